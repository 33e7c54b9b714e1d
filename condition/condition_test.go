package condition

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeRequest is a Request with fixed values.
type fakeRequest struct{ headers map[string]string }

func (fakeRequest) Method() string { return "GET" }
func (fakeRequest) Path() string   { return "/users/alice" }
func (fakeRequest) Host() string   { return "api.example.com" }
func (f fakeRequest) Header(name string) (string, bool) {
	v, ok := f.headers[name]
	return v, ok
}
func (f fakeRequest) Headers() map[string]string         { return f.headers }
func (fakeRequest) Query() map[string]string             { return map[string]string{"page": "2"} }
func (fakeRequest) SourcePrincipal() string              { return "spiffe://cluster.local/ns/a/sa/web" }
func (fakeRequest) DestinationPrincipal() string         { return "" }
func (fakeRequest) ContextExtensions() map[string]string { return map[string]string{"route": "r"} }

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestEval(t *testing.T) {
	claims := NewClaims(map[string]any{
		"sub": "alice", "level": json.Number("3"), "ratio": json.Number("0.5"),
		"roles": []any{"admin", json.Number("7")}, "org": map[string]any{"id": json.Number("42")},
	})
	in := &Input{Request: fakeRequest{headers: map[string]string{"x-tenant-id": "acme"}}, Claims: claims, Now: now}
	tests := []struct {
		expr    string
		want    bool
		wantErr bool
	}{
		{expr: "claims.sub == 'alice' && request.path.split('/')[2] == claims.sub", want: true},
		{expr: "claims.level > 2 && claims.ratio < 1.0 && claims.org.id == 42", want: true},
		{expr: "'admin' in claims.roles && 7 in claims.roles", want: true},
		{expr: "request.headers['x-tenant-id'] == 'acme' && request.query['page'] == '2'", want: true},
		{expr: "request.method == 'GET' && request.host.endsWith('.example.com')", want: true},
		{expr: "source.principal.startsWith('spiffe://') && destination.principal == ''", want: true},
		{expr: "context_extensions['route'] == 'r' && now.getHours('UTC') == 12", want: true},
		{expr: "'ACME'.lowerAscii() == request.headers['x-tenant-id']", want: true}, // strings extension
		{expr: "claims.missing == 'x'", wantErr: true},
		{expr: "request.headers['absent'] == 'x'", wantErr: true},
		{expr: "claims.sub == 'bob'", want: false},
		{expr: "'x-tenant-id' in request.headers && !('x-other' in request.headers)", want: true},
		{expr: "size(request.headers) == 1 && request.headers == {'x-tenant-id': 'acme'}", want: true},
		{expr: "request.headers.exists(k, k == 'x-tenant-id') && request.headers.all(k, request.headers[k] != '')", want: true},
	}
	for _, tc := range tests {
		prg, err := Compile(tc.expr, 0)
		if err != nil {
			t.Errorf("Compile(%q) = %v", tc.expr, err)
			continue
		}
		got, err := prg.Eval(in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("Eval(%q) = %v, %v, want %v (error %v)", tc.expr, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"", "empty"},
		{"claims.sub ==", "1:14:"},
		{"request.paht == '/'", "undeclared reference to 'request.paht'"},
		{"request.path", "must produce a bool"},
		{"request.method == 1", "no matching overload"},
		{"size(claims) > " + strings.Repeat("1", maxExpressionBytes), "size"},
	}
	for _, tc := range tests {
		_, err := Compile(tc.expr, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%.40q) = %v, want an error containing %q", tc.expr, err, tc.want)
		}
	}
	if _, err := Compile("request.path", 0); !errors.Is(err, ErrNotBool) {
		t.Errorf("Compile(non-bool) = %v, want ErrNotBool", err)
	}
}

func TestCostLimit(t *testing.T) {
	expr := "request.headers.all(a, request.headers.all(b, a.size() + b.size() > 0))"
	in := &Input{Request: fakeRequest{headers: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}}, Now: now}
	low, err := Compile(expr, 20)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := low.Eval(in); got || err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Errorf("Eval(cost limit 20) = %v, %v, want false and a cost limit error", got, err)
	}
	high, err := Compile(expr, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := high.Eval(in); !got || err != nil {
		t.Errorf("Eval(default cost limit) = %v, %v, want true", got, err)
	}
}

// FuzzCompileEval: any expression either fails to compile or evaluates without panicking,
// and an evaluation error never comes with true.
func FuzzCompileEval(f *testing.F) {
	for _, s := range []string{"claims.sub == 'a'", "request.headers.exists(k, k.startsWith('x'))", "now < timestamp('2030-01-01T00:00:00Z')", "[1,2].map(x, x*2).size() == 2", "request.path.split('/')[9] == ''"} {
		f.Add(s, `{"sub":"a","n":1}`)
	}
	f.Fuzz(func(t *testing.T, expr, payload string) {
		prg, err := Compile(expr, 10_000)
		if err != nil {
			return
		}
		var raw map[string]any
		dec := json.NewDecoder(strings.NewReader(payload))
		dec.UseNumber()
		if dec.Decode(&raw) != nil {
			raw = nil
		}
		got, err := prg.Eval(&Input{Request: fakeRequest{headers: map[string]string{"x": "y"}}, Claims: NewClaims(raw), Now: now})
		if err != nil && got {
			t.Errorf("Eval(%q) = true with error %v", expr, err)
		}
	})
}
