package extauthz

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// lockedBuffer is a log sink the gRPC server's goroutines write while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// Issue 18, point 3: every decision-log field a client or a token chooses is bounded, so one
// request with a 1 MiB path (or method, request id, kid, subject) writes a short line. A
// token is capped by max_token_bytes, so its sub and kid are 4 KiB here. Sent
// over real gRPC on 127.0.0.1, as Envoy or an attacker reaching the port would.
func TestDecisionLogFieldsClipped(t *testing.T) {
	const huge = 1 << 20
	var logs lockedBuffer
	client := startServer(t, Options{DecisionLog: &logs, Now: func() time.Time { return testNow }}, false)
	protected := map[string]string{"route": "protected"}
	longSub := sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["sub"] = strings.Repeat("s", 4<<10) })
	longKID := sig.mint(t, "ES256", "ec256", func(h, _ map[string]any) { h["kid"] = strings.Repeat("k", 4<<10) })
	tests := []struct {
		name  string
		req   envoyRequest
		field string // the long one
	}{
		{"path", envoyRequest{path: "/api/" + strings.Repeat("a", huge)}, "path"},
		{"path with query", envoyRequest{path: "/" + strings.Repeat("é", huge/2) + "?q=1"}, "path"},
		{"method", envoyRequest{method: strings.Repeat("M", huge)}, "method"},
		{"x-request-id", envoyRequest{headers: hdrs("x-request-id", strings.Repeat("r", huge))}, "x-request-id"},
		{"verified sub", envoyRequest{headers: bearer(longSub), context: protected}, "sub"},
		{"unverified kid", envoyRequest{headers: bearer(longKID), context: protected}, "kid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs.take()
			if _, err := client.Check(t.Context(), tc.req.proto()); err != nil {
				t.Fatalf("Check(long %s) error = %v", tc.name, err)
			}
			line := logs.take()
			t.Logf("long %s: log line of %d bytes", tc.name, len(line))
			if len(line) > 2*maxLoggedPath {
				t.Errorf("Check(long %s) logged a %d-byte line, want at most %d", tc.name, len(line), 2*maxLoggedPath)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("Check(long %s) logged %q, want one JSON line: %v", tc.name, line[:min(len(line), 200)], err)
			}
			v, _ := got[tc.field].(string)
			limit := maxLoggedField
			if tc.field == "path" {
				limit = maxLoggedPath
			}
			if v == "" || len(v) > limit+len("...") || !utf8.ValidString(v) {
				t.Errorf("Check(long %s) logged %s of %d bytes, want 1 to %d bytes (+ \"...\") in valid UTF-8",
					tc.name, tc.field, len(v), limit)
			}
		})
	}
}

func TestClipLogged(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "/api", 8, "/api"},
		{"exact", "/api", 4, "/api"},
		{"ascii", "/api/items", 4, "/api..."},
		{"inside a rune", "/é", 2, "/..."}, // é is 2 bytes: never half of it
		{"after a rune", "/éa", 3, "/é..."},
	}
	for _, tc := range tests {
		if got := clipLogged(tc.in, tc.n); got != tc.want {
			t.Errorf("clipLogged(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// The HTTP faces log through the same decision log: a long path or method from a forwarded
// request, decided or refused, is clipped there too.
func TestDecisionLogFieldsClippedHTTPFaces(t *testing.T) {
	var logs lockedBuffer
	s := NewServer(newVerifyFixture(t).policy, Options{DecisionLog: &logs, Now: func() time.Time { return testNow }})
	long := "/api/" + strings.Repeat("a", 1<<20)
	for name, decide := range map[string]func(){
		"Decide": func() {
			s.Decide(t.Context(), FrontForwardAuth, &Request{Method: strings.Repeat("M", 1<<20), Host: "api.example.com", Path: long})
		},
		"Refuse": func() { s.Refuse(t.Context(), FrontAuthRequest, ReasonBadRequest, strings.Repeat("M", 1<<20), long) },
	} {
		logs.take()
		decide()
		line := logs.take()
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("%s(1 MiB path and method) logged %.200q, want one JSON line: %v", name, line, err)
		}
		path, _ := got["path"].(string)
		method, _ := got["method"].(string)
		if len(line) > 2*maxLoggedPath || path == "" || len(path) > maxLoggedPath+3 || method == "" || len(method) > maxLoggedField+3 {
			t.Errorf("%s(1 MiB path and method) logged a %d-byte line (path %d bytes, method %d), want at most %d, %d and %d",
				name, len(line), len(path), len(method), 2*maxLoggedPath, maxLoggedPath+3, maxLoggedField+3)
		}
	}
}
