package extauthz

import (
	"errors"
	"strings"
	"testing"

	"github.com/jwt-authz/jwt-authz/config"
)

func TestExtract(t *testing.T) {
	header := newTokenSource(config.TokenSource{Header: "authorization", Prefix: "Bearer"})
	rawHeader := newTokenSource(config.TokenSource{Header: "x-token"})
	cookie := newTokenSource(config.TokenSource{Cookie: "access_token"})
	query := newTokenSource(config.TokenSource{Query: "access_token"})
	all := []tokenSource{header, cookie, query}
	big := strings.Repeat("a", config.DefaultMaxTokenBytes)

	tests := []struct {
		name    string
		req     envoyRequest
		sources []tokenSource // default: header, cookie, query
		max     int           // default: 16 KiB
		want    string
		wantSrc tokenSource
		found   bool
		err     error
	}{
		{name: "no credential", req: envoyRequest{}},
		{name: "bearer", req: envoyRequest{headers: hdrs("authorization", "Bearer a.b.c")}, want: "a.b.c", wantSrc: header, found: true},
		{name: "bearer lower case", req: envoyRequest{headers: hdrs("authorization", "bearer a.b.c")}, want: "a.b.c", wantSrc: header, found: true},
		{name: "bearer upper case", req: envoyRequest{headers: hdrs("authorization", "BEARER a.b.c")}, want: "a.b.c", wantSrc: header, found: true},
		{name: "bearer with several spaces", req: envoyRequest{headers: hdrs("authorization", "Bearer    a.b.c")}, want: "a.b.c", wantSrc: header, found: true},
		{name: "bearer in header_map", req: envoyRequest{rawHeader: true, headers: hdrs("authorization", "Bearer a.b.c")}, want: "a.b.c", wantSrc: header, found: true},
		{name: "basic scheme is not ours", req: envoyRequest{headers: hdrs("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")}},
		{name: "dpop scheme is not ours", req: envoyRequest{headers: hdrs("authorization", "DPoP a.b.c")}},
		{name: "scheme without separator", req: envoyRequest{headers: hdrs("authorization", "Bearera.b.c")}},
		{name: "scheme alone", req: envoyRequest{headers: hdrs("authorization", "Bearer")}},
		{name: "scheme and a tab", req: envoyRequest{headers: hdrs("authorization", "Bearer\ta.b.c")}},
		{name: "scheme and spaces only", req: envoyRequest{headers: hdrs("authorization", "Bearer   ")}, wantSrc: header, err: errMalformed},
		{name: "space inside the credential", req: envoyRequest{headers: hdrs("authorization", "Bearer a.b c")}, wantSrc: header, err: errMalformed},
		{name: "two authorization headers in header_map", req: envoyRequest{rawHeader: true, headers: hdrs("authorization", "Bearer a.b.c", "authorization", "Bearer d.e.f")}, wantSrc: header, err: errMultipleTokens},
		{name: "authorization and Authorization in header_map", req: envoyRequest{rawHeader: true, headers: hdrs("authorization", "Bearer a.b.c", "Authorization", "Basic eA==")}, wantSrc: header, err: errMultipleTokens},
		{name: "repeats joined by Envoy", req: envoyRequest{headers: hdrs("authorization", "Bearer a.b.c", "authorization", "Bearer d.e.f")}, wantSrc: header, err: errMultipleTokens},
		{name: "comma in the credential", req: envoyRequest{headers: hdrs("authorization", "Bearer a.b.c,d.e.f")}, wantSrc: header, err: errMultipleTokens},
		{name: "header without prefix", req: envoyRequest{headers: hdrs("x-token", "a.b.c")}, sources: []tokenSource{rawHeader}, want: "a.b.c", wantSrc: rawHeader, found: true},

		{name: "cookie", req: envoyRequest{headers: hdrs("cookie", "access_token=a.b.c")}, want: "a.b.c", wantSrc: cookie, found: true},
		{name: "cookie among others", req: envoyRequest{headers: hdrs("cookie", "theme=dark; access_token=a.b.c; lang=en")}, want: "a.b.c", wantSrc: cookie, found: true},
		{name: "cookie quoted", req: envoyRequest{headers: hdrs("cookie", `access_token="a.b.c"`)}, want: "a.b.c", wantSrc: cookie, found: true},
		{name: "cookie in the second cookie header", req: envoyRequest{rawHeader: true, headers: hdrs("cookie", "theme=dark", "cookie", "access_token=a.b.c")}, want: "a.b.c", wantSrc: cookie, found: true},
		{name: "cookie with a longer name", req: envoyRequest{headers: hdrs("cookie", "access_token_old=a.b.c")}},
		{name: "cookie twice", req: envoyRequest{headers: hdrs("cookie", "access_token=a.b.c; access_token=d.e.f")}, wantSrc: cookie, err: errMultipleTokens},
		{name: "cookie twice across headers", req: envoyRequest{rawHeader: true, headers: hdrs("cookie", "access_token=a.b.c", "cookie", "access_token=d.e.f")}, wantSrc: cookie, err: errMultipleTokens},
		{name: "cookie empty", req: envoyRequest{headers: hdrs("cookie", "access_token=")}, wantSrc: cookie, err: errMalformed},

		{name: "query", req: envoyRequest{path: "/api?access_token=a.b.c"}, want: "a.b.c", wantSrc: query, found: true},
		{name: "query among others", req: envoyRequest{path: "/api?page=2&access_token=a.b.c&sort=asc"}, want: "a.b.c", wantSrc: query, found: true},
		{name: "query percent-encoded", req: envoyRequest{path: "/api?access_token=a%2Eb.c"}, want: "a.b.c", wantSrc: query, found: true},
		{name: "query name percent-encoded", req: envoyRequest{path: "/api?access%5Ftoken=a.b.c"}, want: "a.b.c", wantSrc: query, found: true},
		{name: "query twice", req: envoyRequest{path: "/api?access_token=a.b.c&access_token=d.e.f"}, wantSrc: query, err: errMultipleTokens},
		{name: "query bad escape", req: envoyRequest{path: "/api?access_token=a%zz"}, wantSrc: query, err: errMalformed},

		{name: "header before cookie and query", req: envoyRequest{path: "/api?access_token=q.q.q", headers: hdrs("authorization", "Bearer h.h.h", "cookie", "access_token=c.c.c")}, want: "h.h.h", wantSrc: header, found: true},
		{name: "cookie before query", req: envoyRequest{path: "/api?access_token=q.q.q", headers: hdrs("cookie", "access_token=c.c.c")}, want: "c.c.c", wantSrc: cookie, found: true},
		{name: "other scheme falls through to cookie", req: envoyRequest{headers: hdrs("authorization", "Basic eA==", "cookie", "access_token=c.c.c")}, want: "c.c.c", wantSrc: cookie, found: true},
		{name: "source order is the configured order", req: envoyRequest{path: "/api?access_token=q.q.q", headers: hdrs("authorization", "Bearer h.h.h")}, sources: []tokenSource{query, header}, want: "q.q.q", wantSrc: query, found: true},
		{name: "a bad first source is not skipped", req: envoyRequest{headers: hdrs("authorization", "Bearer a,b", "cookie", "access_token=c.c.c")}, wantSrc: header, err: errMultipleTokens},

		{name: "16 KiB is accepted", req: envoyRequest{headers: hdrs("authorization", "Bearer "+big)}, want: big, wantSrc: header, found: true},
		{name: "over 16 KiB before parsing", req: envoyRequest{headers: hdrs("authorization", "Bearer "+big+"!")}, wantSrc: header, err: errTokenTooLarge},
		{name: "over the cap in a cookie", req: envoyRequest{headers: hdrs("cookie", "access_token="+big+"a")}, wantSrc: cookie, err: errTokenTooLarge},
		{name: "configured cap", req: envoyRequest{headers: hdrs("authorization", "Bearer a.b.cd")}, max: 5, wantSrc: header, err: errTokenTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sources, max := tc.sources, tc.max
			if sources == nil {
				sources = all
			}
			if max == 0 {
				max = config.DefaultMaxTokenBytes
			}
			r := newRequest(tc.req.proto().GetAttributes())
			tok, src, found, err := extract(r, sources, max)
			if tok != tc.want || found != tc.found || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Errorf("extract(%s) = %.40q, %v, %v, want %.40q, %v, %v", tc.name, tok, found, err, tc.want, tc.found, tc.err)
			}
			if (found || err != nil) && src != tc.wantSrc {
				t.Errorf("extract(%s) source = %v, want %v", tc.name, src, tc.wantSrc)
			}
		})
	}
}

// TestExtractThroughCheck: what the client sees for the ambiguous cases (RFC 6750 §3.1).
func TestExtractThroughCheck(t *testing.T) {
	p := newPolicy(t, `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  max_lifetime: 1h
rules:
- name: api
  match: {path_prefix: /}
  require: {}
max_token_bytes: 4096
`, map[string]KeySource{"demo": newFakeKeys("ec256")})
	tok := sig.mint(t, "ES256", "ec256", nil)
	tests := []struct {
		name   string
		req    envoyRequest
		reason Reason
		status int
	}{
		{name: "valid", req: envoyRequest{headers: bearer(tok)}, reason: ReasonAllowed, status: 200},
		{name: "two authorization headers", req: envoyRequest{rawHeader: true, headers: hdrs("authorization", "Bearer "+tok, "authorization", "Bearer "+tok)}, reason: ReasonMultipleTokens, status: 400},
		{name: "repeats joined by Envoy", req: envoyRequest{headers: hdrs("authorization", "Bearer "+tok, "authorization", "Bearer "+tok)}, reason: ReasonMultipleTokens, status: 400},
		{name: "over max_token_bytes", req: envoyRequest{headers: bearer(strings.Repeat("x", 4097))}, reason: ReasonTokenTooLarge, status: 401},
		{name: "other scheme only", req: envoyRequest{headers: hdrs("authorization", "Basic eA==")}, reason: ReasonMissingToken, status: 401},
		{name: "JSON serialization", req: envoyRequest{headers: bearer(jsonSerialization(tok))}, reason: ReasonMultipleTokens, status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, d := check(t, p, tc.req.proto())
			if d.Reason != tc.reason || d.HTTPStatus != tc.status {
				t.Errorf("Check(%s) = %s %d, want %s %d", tc.name, d.Reason, d.HTTPStatus, tc.reason, tc.status)
			}
		})
	}
}

func jsonSerialization(tok string) string {
	h, p, s := segments(tok)
	return `{"payload":"` + p + `","protected":"` + h + `","signature":"` + s + `"}`
}

func TestParseToken(t *testing.T) {
	valid := sig.mint(t, "ES256", "ec256", nil)
	vh, vp, vs := segments(valid)
	hdr := func(s string) string { return b64([]byte(s)) + "." + vp + "." + vs }
	pay := func(s string) string { return vh + "." + b64([]byte(s)) + "." + vs }
	tests := []struct {
		name string
		raw  string
		err  error
	}{
		{name: "valid", raw: valid},
		{name: "empty", raw: "", err: errMalformed},
		{name: "dots only", raw: "..", err: errMalformed},
		{name: "two segments", raw: vh + "." + vp, err: errMalformed},
		{name: "four segments", raw: valid + ".x", err: errMalformed},
		{name: "JSON serialization", raw: jsonSerialization(valid), err: errMalformed},
		{name: "padding", raw: vh + "=." + vp + "." + vs, err: errMalformed},
		{name: "padding in the middle", raw: vh[:4] + "=" + vh[4:] + "." + vp + "." + vs, err: errMalformed},
		{name: "space", raw: vh + "." + vp + ". " + vs, err: errMalformed},
		{name: "tab", raw: vh + "\t." + vp + "." + vs, err: errMalformed},
		{name: "line feed", raw: vh + "." + vp[:8] + "\n" + vp[8:] + "." + vs, err: errMalformed},
		{name: "carriage return", raw: vh + "." + vp + "." + vs[:8] + "\r" + vs[8:], err: errMalformed},
		{name: "plus", raw: vh + "." + vp + "." + vs[:8] + "+" + vs[9:], err: errMalformed},
		{name: "slash", raw: vh + "." + vp + "." + vs[:8] + "/" + vs[9:], err: errMalformed},
		{name: "impossible segment length", raw: vh + "." + vp + "." + vs + "AAA", err: errMalformed},
		{name: "header not JSON", raw: hdr(`alg=ES256`), err: errMalformed},
		{name: "header an array", raw: hdr(`["ES256"]`), err: errMalformed},
		{name: "header duplicate member", raw: hdr(`{"alg":"ES256","alg":"none"}`), err: errMalformed},
		{name: "header not UTF-8", raw: hdr("{\"alg\":\"ES256\",\"x\":\"\xc3\"}"), err: errMalformed},
		{name: "header nested too deep", raw: hdr(`{"alg":"ES256","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`), err: errMalformed},
		{name: "alg empty", raw: hdr(`{"alg":""}`), err: errMalformed},
		{name: "alg a number", raw: hdr(`{"alg":256}`), err: errMalformed},
		{name: "crit", raw: hdr(`{"alg":"ES256","crit":["b64"],"b64":false}`), err: errHeader},
		{name: "b64", raw: hdr(`{"alg":"ES256","b64":true}`), err: errHeader},
		{name: "zip", raw: hdr(`{"alg":"ES256","zip":"DEF"}`), err: errHeader},
		{name: "typ a number", raw: hdr(`{"alg":"ES256","typ":1}`), err: errType},
		{name: "payload an array", raw: pay(`[]`), err: errClaims},
		{name: "payload null", raw: pay(`null`), err: errClaims},
		{name: "payload a number", raw: pay(`1`), err: errClaims},
		{name: "payload not UTF-8", raw: pay("{\"sub\":\"\xff\"}"), err: errClaims},
		{name: "payload duplicate claim", raw: pay(`{"sub":"a","sub":"b"}`), err: errClaims},
		{name: "payload duplicate nested claim", raw: pay(`{"a":{"b":[{"c":1,"c":2}]}}`), err: errClaims},
		{name: "payload trailing data", raw: pay(`{"sub":"a"}x`), err: errClaims},
		{name: "payload nested too deep", raw: pay(`{"a":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 41)), err: errClaims},
		{name: "iss a number", raw: pay(`{"iss":1}`), err: errClaims},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseToken(tc.raw)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Errorf("parseToken(%s) = %v, want %v", tc.name, err, tc.err)
			}
		})
	}
}

func TestParseTokenFields(t *testing.T) {
	tok := sig.mint(t, "ES256", "ec256", func(h, c map[string]any) { h["typ"] = "at+jwt"; c["n"] = 1.50 })
	pt, err := parseToken(tok)
	if err != nil {
		t.Fatalf("parseToken(valid) = %v", err)
	}
	if pt.alg != "ES256" || pt.kid != "ec256" || pt.typ != "at+jwt" || !pt.hasTyp || pt.iss != "https://issuer.example" {
		t.Errorf("parseToken(valid) = alg %q kid %q typ %q (%v) iss %q, want ES256 ec256 at+jwt (true) https://issuer.example",
			pt.alg, pt.kid, pt.typ, pt.hasTyp, pt.iss)
	}
}

func TestNormalizePath(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "/"},
		{"plain", "/api/items", "/api/items"},
		{"encoded unreserved", "/%61dmin", "/admin"},
		{"encoded dot segment", "/api/%2e%2e/admin", "/admin"},
		{"encoded slash stays", "/a%2fb", "/a%2Fb"},
		{"dot-dot", "/api/../admin", "/admin"},
		{"dot", "/./admin", "/admin"},
		{"double slash", "//admin", "/admin"},
		{"dot-dot past root", "/../../admin", "/admin"},
		{"trailing dot-dot", "/admin/x/..", "/admin/"},
		{"trailing slash kept", "/admin/", "/admin/"},
		{"relative", "admin", "/admin"},
		{"percent without hex", "/a%zz", "/a%25zz"},
		{"truncated percent", "/a%6", "/a%256"},
		{"stray percent before an escape", "/%%361dmin", "/%2561dmin"},
		{"stray percent before an encoded hex digit", "%7%41", "/%257A"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalizePath(tc.in); got != tc.want {
				t.Errorf("normalizePath(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
