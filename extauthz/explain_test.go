package extauthz

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestMismatchAgreesWithMatch: Explain's reason for skipping a rule is given exactly when
// the decision skips it.
func TestMismatchAgreesWithMatch(t *testing.T) {
	p := newPolicy(t, rulesConfig, map[string]KeySource{"demo": newFakeKeys("ec256"), "partner": newFakeKeys("ec256")})
	for _, e := range []envoyRequest{
		{path: "/dup"}, {path: "/public/x"}, {path: "/blocked"}, {path: "/admin"}, {host: "api.example.com", path: "/hosted"},
		{host: "x.example.com", path: "/hosted"}, {path: "/exact"}, {path: "/exactly"}, {path: "/api/"}, {method: "POST", path: "/items"},
		{path: "/items"}, {path: "/x", context: map[string]string{"route": "internal"}}, {path: "/partner/a"}, {path: "/%61dmin"},
	} {
		r, err := parseRequest(mustMarshal(t, e.proto()))
		if err != nil {
			t.Fatal(err)
		}
		for _, ru := range p.rules {
			if got, want := ru.mismatch(r) == "", ru.matchesHTTP(r); got != want {
				t.Errorf("rule %q on %s %s: mismatch %q, matchesHTTP %v", ru.name, r.method, r.path, ru.mismatch(r), want)
			}
		}
	}
}

func TestExplainShadow(t *testing.T) {
	p := newPolicy(t, shadowRules, map[string]KeySource{"demo": newFakeKeys("ec256")})
	tok := sig.mint(t, "ES256", "ec256", nil)
	out, lines := p.Explain(context.Background(), &Request{Method: "GET", Host: "api.example.com", Path: "/api/x", Headers: []Header{{"Authorization", "Bearer " + tok}}}, testNow)
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		`rule "admin-soon": shadow rule: evaluated, reported, then the search goes on`,
		"would answer deny (insufficient_scope)",
		`rule "legacy-off": not selected: path /api/x is not under /legacy`,
		`rule "api": selected`,
		`decision: allow, reason allowed, HTTP 200, rule "api"`,
		`shadow: would answer deny (insufficient_scope), rule "admin-soon"`,
		"upstream header x-jwt-sub: alice",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Explain lacks %q:\n%s", want, text)
		}
	}
	if !out.Allowed || strings.Contains(text, tok[strings.LastIndexByte(tok, '.')+1:]) {
		t.Errorf("Explain = %v, or it printed the signature:\n%s", out.Allowed, text)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
