package config

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestLoadExample(t *testing.T) {
	c, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatalf("Load(example.yaml) = %v", err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	one := 1.0
	want := &Config{
		GRPCAddress:              "127.0.0.1:9001",
		HTTPAddress:              "127.0.0.1:9002",
		Reflection:               &yes,
		MaxTokenBytes:            16 << 10,
		ShutdownTimeout:          Duration(10 * time.Second),
		GRPCMaxConcurrentStreams: 1024,
		Log:                      Log{Level: "info", AllowSampleRate: &one},
		Cache:                    Cache{Enabled: &yes, MaxEntries: 100_000, MaxBytes: 64 << 20},
		DynamicMetadata:          DynamicMetadata{Enabled: &yes},
		CEL:                      CEL{CostLimit: 1_000_000},
		Tracing:                  Tracing{SamplingRatio: &one},
		Providers: []Provider{{
			Name:       "demo",
			Issuer:     "https://issuer.example",
			Audiences:  []string{"demo-api"},
			Algorithms: []string{"RS256", "ES256", "HS256"},
			ClockSkew:  Duration(30 * time.Second),
			RequireExp: &yes,
			Types:      []string{"JWT", "at+jwt", "application/jwt", "application/at+jwt"},
			Realm:      "demo",
			// issue 11: defaults of the audience and ID-token checks
			AudienceClaims: []string{"aud"},
			RejectIDTokens: &yes,
			Keys: []Key{
				{
					JWKSURI:            "https://issuer.example/.well-known/jwks.json",
					RefreshInterval:    Duration(5 * time.Minute),
					MinRefreshInterval: Duration(time.Minute),
					MaxRefreshInterval: Duration(24 * time.Hour),
					MaxStale:           Duration(24 * time.Hour),
					UnknownKIDCooldown: Duration(10 * time.Second),
					Timeout:            Duration(5 * time.Second),
				},
				{JWKSFile: "keys/jwks.json"},
				{PEMFile: "keys/rsa.pub.pem", KID: "rsa-2024"},
				{HMACSecretFile: "keys/hs.secret", KID: "hs-1"},
			},
			TokenSources: []TokenSource{
				{Header: "authorization", Prefix: "Bearer"},
				{Cookie: "access_token"},
			},
			ClaimsToHeaders:      map[string]string{"sub": "x-jwt-sub", "roles": "x-jwt-roles"},
			ForwardPayloadHeader: "x-jwt-payload",
			ForwardToken:         &yes,
		}},
		Rules: []Rule{
			{Name: "public", Match: Match{PathPrefix: "/public"}, Action: "allow"},
			{Name: "admin", Match: Match{PathPrefix: "/admin", Methods: []string{"POST", "DELETE"}},
				Require: &Require{Providers: []string{"demo"}, Scopes: []string{"admin"}}},
			{Name: "api", Match: Match{PathPrefix: "/"}, Require: &Require{Providers: []string{"demo"}}},
		},
		DefaultAction: "deny",
		NonHTTPAction: "deny",
		Dir:           dir,
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Load(example.yaml) mismatch (-want +got):\n%s", diff)
	}
}

// TestExampleKeyFiles: the files the example names exist next to it and hold what the
// issue describes, so the keys package (and a reader) can load them.
func TestExampleKeyFiles(t *testing.T) {
	c, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatalf("Load(example.yaml) = %v", err)
	}
	k := c.Providers[0].Keys

	data, err := os.ReadFile(c.Path(k[2].PEMFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", k[2].PEMFile)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", k[2].PEMFile, err)
	}
	if rsaPub, ok := pub.(*rsa.PublicKey); !ok || rsaPub.N.BitLen() != 2048 {
		t.Errorf("%s holds %T, want a 2048-bit RSA public key", k[2].PEMFile, pub)
	}

	data, err = os.ReadFile(c.Path(k[1].JWKSFile))
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatalf("%s: %v", k[1].JWKSFile, err)
	}
	var kinds []string
	for _, key := range set.Keys {
		switch v := key.Key.(type) {
		case *ecdsa.PublicKey:
			kinds = append(kinds, v.Curve.Params().Name+"/"+key.KeyID)
		case []byte:
			kinds = append(kinds, fmt.Sprintf("oct%d/%s", 8*len(v), key.KeyID))
		default:
			kinds = append(kinds, fmt.Sprintf("%T/%s", v, key.KeyID))
		}
	}
	if got, want := strings.Join(kinds, " "), "P-256/ec-1 oct256/oct-1"; got != want {
		t.Errorf("%s keys = %s, want %s", k[1].JWKSFile, got, want)
	}

	secret, err := os.ReadFile(c.Path(k[3].HMACSecretFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 32 {
		t.Errorf("%s is %d bytes, want at least 32", k[3].HMACSecretFile, len(secret))
	}
}

// minimal is a valid configuration; broken cases replace one line of it.
const minimal = `grpc_address: 127.0.0.1:9001
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [RS256]
  clock_skew: 30s
  keys:
  - jwks_file: keys/jwks.json
  - jwks_uri: https://issuer.example/jwks.json
  claims_to_headers: {sub: x-jwt-sub}
rules:
- name: api
  match: {path_prefix: /}
  require: {providers: [demo]}
`

func TestParseMinimal(t *testing.T) {
	if _, err := Parse([]byte(minimal), t.TempDir()); err != nil {
		t.Fatalf("Parse(minimal) = %v", err)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte("grpc_address: 127.0.0.1:9001\nproviders: [{name: p, issuer: i, audiences: [a], algorithms: [ES256], keys: [{jwks_uri: 'https://i/jwks', refresh_interval: 2h}]}]\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	p, k := c.Providers[0], c.Providers[0].Keys[0]
	if c.GRPCMaxConcurrentStreams != DefaultGRPCMaxConcurrentStreams {
		t.Errorf("Parse default grpc_max_concurrent_streams = %d, want %d", c.GRPCMaxConcurrentStreams, DefaultGRPCMaxConcurrentStreams)
	}
	got := []any{p.ClockSkew.D(), *p.RequireExp, *p.ForwardToken, p.Realm, p.TokenSources, k.MinRefreshInterval.D(), k.MaxRefreshInterval.D()}
	want := []any{30 * time.Second, true, true, "p", []TokenSource{{Header: "authorization", Prefix: "Bearer"}}, time.Minute, 24 * time.Hour}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse defaults mismatch (-want +got):\n%s", diff)
	}
	// A refresh interval outside the default bounds widens them.
	c, err = Parse([]byte("grpc_address: a:1\nproviders: [{name: p, issuer: i, audiences: [a], algorithms: [ES256], keys: [{jwks_uri: 'https://i/jwks', refresh_interval: 30s}, {jwks_uri: 'https://i/j2', refresh_interval: 48h}]}]\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	ks := c.Providers[0].Keys
	if ks[0].MinRefreshInterval.D() != 30*time.Second || ks[1].MaxRefreshInterval.D() != 48*time.Hour {
		t.Errorf("Parse(refresh 30s, 48h) bounds = %v, %v, want 30s and 48h", ks[0].MinRefreshInterval, ks[1].MaxRefreshInterval)
	}
}

// TestCELErrorNamesRuleAndColumn: -check must point at the rule, the expression and the column.
func TestCELErrorNamesRuleAndColumn(t *testing.T) {
	text := strings.Replace(minimal, "providers: [demo]}", "providers: [demo], cel: 'claims.tid == tenant'}", 1)
	_, err := Parse([]byte(text), "")
	want := `rules[0].require.cel: rule "api": 1:15: undeclared reference to 'tenant'`
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"claims.tid == tenant"`) {
		t.Errorf("Parse(undeclared variable) = %v, want %q and the expression", err, want)
	}
}

func TestParseBroken(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string // in minimal: old, new
		want    string    // the error names this field path (a prefix when it ends in ".")
	}{
		{name: "unknown top-level key", replace: [2]string{"rules:", "grpc_adress: x\nrules:"}, want: "grpc_adress"},
		{name: "unknown provider key", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  audience: demo-api"}, want: "providers[0].audience"},
		{name: "unknown key in a flow mapping", replace: [2]string{"match: {path_prefix: /}", "match: {path_prefix: /, methodz: [GET]}"}, want: "rules[0].match.methodz"},
		{name: "tracing sampling ratio above 1", replace: [2]string{"grpc_address: 127.0.0.1:9001", "grpc_address: 127.0.0.1:9001\ntracing: {enabled: true, sampling_ratio: 1.5}"}, want: "tracing.sampling_ratio"},
		{name: "unknown tracing key", replace: [2]string{"grpc_address: 127.0.0.1:9001", "grpc_address: 127.0.0.1:9001\ntracing: {enabled: true, endpoint: x}"}, want: "tracing.endpoint"},
		{name: "missing grpc_address", replace: [2]string{"grpc_address: 127.0.0.1:9001", "http_address: 127.0.0.1:9002"}, want: "grpc_address"},
		{name: "trusted proxy not an address", replace: [2]string{"grpc_address: 127.0.0.1:9001", "grpc_address: 127.0.0.1:9001\nhttp_authz_address: 127.0.0.1:9003\nhttp_authz_trusted_proxies: [127.0.0.1, nginx.local]"}, want: "http_authz_trusted_proxies[1]"},
		{name: "trusted proxies without listener", replace: [2]string{"grpc_address: 127.0.0.1:9001", "grpc_address: 127.0.0.1:9001\nhttp_authz_trusted_proxies: [10.0.0.0/8]"}, want: "http_authz_trusted_proxies"},
		{name: "relative unix socket for http authz", replace: [2]string{"grpc_address: 127.0.0.1:9001", "grpc_address: 127.0.0.1:9001\nhttp_authz_address: unix:run/sock"}, want: "http_authz_address"},
		{name: "relative unix socket", replace: [2]string{"grpc_address: 127.0.0.1:9001", "grpc_address: unix:run/sock"}, want: "grpc_address"},
		{name: "jwks_uri not absolute", replace: [2]string{"https://issuer.example/jwks.json", "/jwks.json"}, want: "providers[0].keys[1].jwks_uri"},
		{name: "jwks_uri not http", replace: [2]string{"https://issuer.example/jwks.json", "file:///etc/jwks.json"}, want: "providers[0].keys[1].jwks_uri"},
		{name: "missing issuer", replace: [2]string{"  issuer: https://issuer.example\n", ""}, want: "providers[0].issuer"},
		{name: "missing name", replace: [2]string{"- name: demo", "- realm: demo"}, want: "providers[0].name"},
		{name: "duplicate provider name", replace: [2]string{"rules:", "- {name: demo, issuer: https://other.example, audiences: [a], algorithms: [ES256], keys: [{jwks_file: k.json}]}\nrules:"}, want: "providers[1].name"},
		{name: "duplicate issuer", replace: [2]string{"rules:", "- {name: other, issuer: https://issuer.example, audiences: [a], algorithms: [ES256], keys: [{jwks_file: k.json}]}\nrules:"}, want: "providers[1].issuer"},
		{name: "no audiences", replace: [2]string{"  audiences: [demo-api]\n", ""}, want: "providers[0].audiences"},
		{name: "algorithm none", replace: [2]string{"algorithms: [RS256]", "algorithms: [RS256, none]"}, want: "providers[0].algorithms[1]"},
		{name: "algorithm in lower case", replace: [2]string{"algorithms: [RS256]", "algorithms: [rs256]"}, want: "providers[0].algorithms[0]"},
		{name: "no algorithms", replace: [2]string{"algorithms: [RS256]", "algorithms: []"}, want: "providers[0].algorithms"},
		{name: "no keys", replace: [2]string{"  keys:\n  - jwks_file: keys/jwks.json\n  - jwks_uri: https://issuer.example/jwks.json\n", ""}, want: "providers[0].keys"},
		{name: "two kinds in one key", replace: [2]string{"- jwks_file: keys/jwks.json", "- jwks_file: keys/jwks.json\n    pem_file: keys/rsa.pub.pem"}, want: "providers[0].keys[0]"},
		{name: "hmac without kid", replace: [2]string{"- jwks_file: keys/jwks.json", "- hmac_secret_file: keys/hs.secret"}, want: "providers[0].keys[0].kid"},
		{name: "kid on a jwks file", replace: [2]string{"- jwks_file: keys/jwks.json", "- jwks_file: keys/jwks.json\n    kid: k1"}, want: "providers[0].keys[0].kid"},
		{name: "refresh on a file", replace: [2]string{"- jwks_file: keys/jwks.json", "- jwks_file: keys/jwks.json\n    refresh_interval: 5m"}, want: "providers[0].keys[0]"},
		{name: "refresh under a second", replace: [2]string{"- jwks_uri: https://issuer.example/jwks.json", "- jwks_uri: https://issuer.example/jwks.json\n    refresh_interval: 500ms"}, want: "providers[0].keys[1].refresh_interval"},
		{name: "min refresh over max", replace: [2]string{"- jwks_uri: https://issuer.example/jwks.json", "- jwks_uri: https://issuer.example/jwks.json\n    min_refresh_interval: 2h\n    max_refresh_interval: 1h"}, want: "providers[0].keys[1].min_refresh_interval"},
		{name: "duration as integer", replace: [2]string{"clock_skew: 30s", "clock_skew: 30"}, want: "providers[0].clock_skew"},
		{name: "duration as integer in a key", replace: [2]string{"- jwks_uri: https://issuer.example/jwks.json", "- {jwks_uri: 'https://issuer.example/jwks.json', refresh_interval: 300}"}, want: "providers[0].keys[1].refresh_interval"},
		{name: "duration without unit", replace: [2]string{"clock_skew: 30s", `clock_skew: "30"`}, want: "providers[0].clock_skew"},
		{name: "negative duration", replace: [2]string{"clock_skew: 30s", "clock_skew: -1s"}, want: "providers[0].clock_skew"},
		{name: "bad header name in claims_to_headers", replace: [2]string{"{sub: x-jwt-sub}", "{sub: X-JWT-Sub}"}, want: "providers[0].claims_to_headers.sub"},
		{name: "more than 64 claims_to_headers", replace: [2]string{"{sub: x-jwt-sub}", "{" + manyClaimHeaders(65) + "}"}, want: "providers[0].claims_to_headers"},
		{name: "host in claims_to_headers", replace: [2]string{"{sub: x-jwt-sub}", "{sub: host}"}, want: "providers[0].claims_to_headers.sub"},
		{name: "header name with a space", replace: [2]string{"{sub: x-jwt-sub}", "{sub: 'x jwt'}"}, want: "providers[0].claims_to_headers.sub"},
		{name: "one header for two claims", replace: [2]string{"{sub: x-jwt-sub}", "{sub: x-jwt-sub, email: x-jwt-sub}"}, want: "providers[0].claims_to_headers."},
		{name: "payload header also a claim header", replace: [2]string{"{sub: x-jwt-sub}", "{sub: x-jwt-sub}\n  forward_payload_header: x-jwt-sub"}, want: "providers[0].forward_payload_header"},
		{name: "token source with two kinds", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  token_sources: [{header: x-token, cookie: t}]"}, want: "providers[0].token_sources[0]"},
		{name: "prefix on a cookie", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  token_sources: [{cookie: t, prefix: Bearer}]"}, want: "providers[0].token_sources[0].prefix"},
		{name: "allowed_origins on a header", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  token_sources: [{header: x-token, allowed_origins: ['https://app.example']}]"}, want: "providers[0].token_sources[0].allowed_origins"},
		{name: "allowed origin with a path", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  token_sources: [{cookie: t, allowed_origins: ['https://app.example/']}]"}, want: "providers[0].token_sources[0].allowed_origins[0]"},
		{name: "allowed origin wildcard", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  token_sources: [{cookie: t, allowed_origins: ['https://*.example.com']}]"}, want: "providers[0].token_sources[0].allowed_origins[0]"},
		{name: "allowed origin null", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  token_sources: [{cookie: t, allowed_origins: ['https://a.example', 'null']}]"}, want: "providers[0].token_sources[0].allowed_origins[1]"},
		{name: "cors_preflight without OPTIONS", replace: [2]string{"{path_prefix: /}", "{path_prefix: /, cors_preflight: true, methods: [GET]}\n  action: allow\n- name: x\n  match: {path_prefix: /}"}, want: "rules[0].match.cors_preflight"},
		{name: "cors_preflight requiring a token", replace: [2]string{"{path_prefix: /}", "{path_prefix: /, cors_preflight: true}"}, want: "rules[0].require"},
		{name: "rule with both action and require", replace: [2]string{"  require: {providers: [demo]}", "  require: {providers: [demo]}\n  action: allow"}, want: "rules[0]"},
		{name: "rule with neither", replace: [2]string{"  require: {providers: [demo]}", ""}, want: "rules[0].action"},
		{name: "unknown action", replace: [2]string{"  require: {providers: [demo]}", "  action: permit"}, want: "rules[0].action"},
		{name: "unknown provider in require", replace: [2]string{"providers: [demo]}", "providers: [demo, partner]}"}, want: "rules[0].require.providers[1]"},
		{name: "rule without name", replace: [2]string{"- name: api", "- match: {path: /x}\n  action: deny\n- name: api"}, want: "rules[0].name"},
		{name: "path and path_prefix", replace: [2]string{"{path_prefix: /}", "{path_prefix: /, path: /x}"}, want: "rules[0].match"},
		{name: "relative path_prefix", replace: [2]string{"{path_prefix: /}", "{path_prefix: api}"}, want: "rules[0].match.path_prefix"},
		{name: "wildcard inside a host", replace: [2]string{"{path_prefix: /}", "{path_prefix: /, hosts: [api.*.com]}"}, want: "rules[0].match.hosts[0]"},
		{name: "lower-case method", replace: [2]string{"{path_prefix: /}", "{path_prefix: /, methods: [get]}"}, want: "rules[0].match.methods[0]"},
		{name: "claim without values", replace: [2]string{"providers: [demo]}", "providers: [demo], claims: {role: []}}"}, want: "rules[0].require.claims.role"},
		{name: "claim path with a backslash", replace: [2]string{"providers: [demo]}", `providers: [demo], claims: {'resource_access.billing\\.example\\.com.roles': admin}}`}, want: "rules[0].require.claims."},
		{name: "JSON Pointer with a bad escape", replace: [2]string{"providers: [demo]}", "providers: [demo], claims: {'/a~2b': admin}}"}, want: "rules[0].require.claims./a~2b"},
		{name: "claims_to_headers path with a backslash", replace: [2]string{"{sub: x-jwt-sub}", `{'a\\.b': x-jwt-ab}`}, want: "providers[0].claims_to_headers."},
		{name: "cel that does not parse", replace: [2]string{"providers: [demo]}", "providers: [demo], cel: 'claims.tid =='}"}, want: "rules[0].require.cel"},
		{name: "cel with an unknown variable", replace: [2]string{"providers: [demo]}", "providers: [demo], cel: 'request.paht == \"/\"'}"}, want: "rules[0].require.cel"},
		{name: "cel that is not a bool", replace: [2]string{"providers: [demo]}", "providers: [demo], cel: 'request.path'}"}, want: "rules[0].require.cel"},
		{name: "match cel with a type error", replace: [2]string{"{path_prefix: /}", "{path_prefix: /, cel: 'request.method == 1'}"}, want: "rules[0].match.cel"},
		{name: "audience claim path with a backslash", replace: [2]string{"  clock_skew: 30s", `  clock_skew: 30s
  audience_claims: ['a\b']`}, want: "providers[0].audience_claims[0]"},
		{name: "required claim without values", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  required_claims: {typ: []}"}, want: "providers[0].required_claims.typ"},
		{name: "empty authorized party", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  authorized_parties: ['']"}, want: "providers[0].authorized_parties[0]"},
		{name: "empty rule audience", replace: [2]string{"providers: [demo]}", "providers: [demo], audiences: ['']}"}, want: "rules[0].require.audiences[0]"},
		{name: "alias used twice", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  issuer_aliases: [https://issuer.example]"}, want: "providers[0].issuer_aliases[0]"},
		{name: "alias that is a template", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  issuer_aliases: ['https://x.example/{t}']"}, want: "providers[0].issuer_aliases[0]"},
		{name: "template with two placeholders", replace: [2]string{"  issuer: https://issuer.example", "  issuer: https://issuer.example/{a}/{b}"}, want: "providers[0].issuer"},
		{name: "template in the host", replace: [2]string{"  issuer: https://issuer.example", "  issuer: https://{tenant}.example.com/"}, want: "providers[0].issuer"},
		{name: "unclosed placeholder", replace: [2]string{"  issuer: https://issuer.example", "  issuer: https://issuer.example/{tenant"}, want: "providers[0].issuer"},
		{name: "tenants without a template", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  tenants: [a]"}, want: "providers[0].tenant_claim"},
		{name: "tenant with a slash", replace: [2]string{"  issuer: https://issuer.example", "  issuer: https://issuer.example/{t}/v2.0\n  tenants: [a/b]"}, want: "providers[0].tenants[0]"},
		{name: "template discovery without discovery_uri", replace: [2]string{"  issuer: https://issuer.example\n  audiences: [demo-api]\n  algorithms: [RS256]\n  clock_skew: 30s\n  keys:\n  - jwks_file: keys/jwks.json\n  - jwks_uri: https://issuer.example/jwks.json",
			"  issuer: https://issuer.example/{t}/v2.0\n  audiences: [demo-api]\n  algorithms: [RS256]\n  clock_skew: 30s\n  keys:\n  - jwks_file: keys/jwks.json\n  - discovery: true"}, want: "providers[0].keys[1].discovery_uri"},
		{name: "discovery_uri without discovery", replace: [2]string{"- jwks_file: keys/jwks.json", "- jwks_file: keys/jwks.json\n    discovery_uri: https://x.example/.well-known/openid-configuration"}, want: "providers[0].keys[0].discovery_uri"},
		{name: "bearer token on a file", replace: [2]string{"- jwks_file: keys/jwks.json", "- jwks_file: keys/jwks.json\n    bearer_token_file: token"}, want: "providers[0].keys[0]"},
		{name: "bearer token over http", replace: [2]string{"- jwks_uri: https://issuer.example/jwks.json", "- jwks_uri: http://issuer.example/jwks.json\n    bearer_token_file: token"}, want: "providers[0].keys[1].bearer_token_file"},
		{name: "no issuer nor trust domain", replace: [2]string{"  issuer: https://issuer.example\n", ""}, want: "providers[0].issuer"},
		{name: "trust domain with a scheme", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  spiffe_trust_domain: spiffe://example.org"}, want: "providers[0].spiffe_trust_domain"},
		{name: "spiffe bundle uri not http", replace: [2]string{"- jwks_file: keys/jwks.json", "- spiffe_bundle_uri: file:///bundle"}, want: "providers[0].keys[0].spiffe_bundle_uri"},
		{name: "spiffe bundle and jwks file", replace: [2]string{"- jwks_file: keys/jwks.json", "- jwks_file: keys/jwks.json\n    spiffe_bundle_file: b.json"}, want: "providers[0].keys[0]"},
		{name: "spiffe id not an ID", replace: [2]string{"providers: [demo]}", "providers: [demo], spiffe_ids: [web]}"}, want: "rules[0].require.spiffe_ids[0]"},
		{name: "spiffe id with a star inside", replace: [2]string{"providers: [demo]}", "providers: [demo], spiffe_ids: ['spiffe://example.org/*/x*']}"}, want: "rules[0].require.spiffe_ids[0]"},
		{name: "default_action", replace: [2]string{"rules:", "default_action: permit\nrules:"}, want: "default_action"},
		{name: "non_http_action", replace: [2]string{"rules:", "non_http_action: maybe\nrules:"}, want: "non_http_action"},
		{name: "log level", replace: [2]string{"rules:", "log: {level: verbose}\nrules:"}, want: "log.level"},
		{name: "sample rate", replace: [2]string{"rules:", "log: {allow_sample_rate: 2}\nrules:"}, want: "log.allow_sample_rate"},
		{name: "negative stream limit", replace: [2]string{"rules:", "grpc_max_concurrent_streams: -1\nrules:"}, want: "grpc_max_concurrent_streams"},
		{name: "stream limit over 31 bits", replace: [2]string{"rules:", "grpc_max_concurrent_streams: 2147483648\nrules:"}, want: "grpc_max_concurrent_streams"},
		{name: "tls without key", replace: [2]string{"rules:", "tls: {cert_file: a.crt}\nrules:"}, want: "tls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(minimal, tc.replace[0]) {
				t.Fatalf("minimal has no %q to replace", tc.replace[0])
			}
			text := strings.Replace(minimal, tc.replace[0], tc.replace[1], 1)
			_, err := Parse([]byte(text), t.TempDir())
			want := tc.want + ":"
			if strings.HasSuffix(tc.want, ".") {
				want = tc.want
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Parse(%s) = %v, want an error naming %s", tc.name, err, tc.want)
			}
		})
	}
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://app.example.com":      "https://app.example.com",
		"HTTPS://App.Example.COM":      "https://app.example.com",
		"https://app.example.com:443":  "https://app.example.com",
		"http://localhost:80":          "http://localhost",
		"http://127.0.0.1:8001":        "http://127.0.0.1:8001",
		"https://app.example.com:8443": "https://app.example.com:8443",
		"http://[::1]:8001":            "http://[::1]:8001",
	} {
		if got, err := Origin(in); err != nil || got != want {
			t.Errorf("Origin(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "null", "app.example.com", "ftp://app.example.com", "https://app.example.com/",
		"https://app.example.com/x", "https://u@app.example.com", "https://app.example.com?", "https://app.example.com#x", "https://*.example.com", "*"} {
		if got, err := Origin(in); err == nil {
			t.Errorf("Origin(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseDocuments(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"empty", "", "empty file"},
		{"two documents", minimal + "---\n" + minimal, "more than one YAML document"},
		{"not a mapping", "- a\n- b\n", "cannot unmarshal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.text), t.TempDir()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%s) = %v, want an error with %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("testdata/missing.yaml"); err == nil || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("Load(missing) = %v, want a config: error", err)
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("grpc_address: a:1\nbogus: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("Load(bad.yaml) = %v, want an error naming the file and the key", err)
	}
}

func TestPath(t *testing.T) {
	c := &Config{Dir: "/etc/jwt-authz"}
	tests := []struct{ in, want string }{
		{"keys/jwks.json", "/etc/jwt-authz/keys/jwks.json"},
		{"/abs/jwks.json", "/abs/jwks.json"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := c.Path(tc.in); got != tc.want {
			t.Errorf("Path(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := (&Config{}).Path("keys/a"); got != "keys/a" {
		t.Errorf("Path without Dir = %q, want keys/a", got)
	}
}

func TestValuesScalarOrList(t *testing.T) {
	text := strings.Replace(minimal, "providers: [demo]}", "providers: [demo], claims: {tier: gold, groups: [eng, ops], level: 3}}", 1)
	c, err := Parse([]byte(text), "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Values{"tier": {"gold"}, "groups": {"eng", "ops"}, "level": {"3"}}
	if diff := cmp.Diff(want, c.Rules[0].Require.Claims); diff != "" {
		t.Errorf("Parse(claims) mismatch (-want +got):\n%s", diff)
	}
	bad := strings.Replace(minimal, "providers: [demo]}", "providers: [demo], claims: {tier: {a: b}}}", 1)
	if _, err := Parse([]byte(bad), ""); err == nil {
		t.Errorf("Parse(claim value a mapping) = nil, want an error")
	}
}

// manyClaimHeaders is n claims_to_headers entries in YAML flow style.
func manyClaimHeaders(n int) string {
	entries := make([]string, n)
	for i := range entries {
		entries[i] = fmt.Sprintf("c%d: x-c%d", i, i)
	}
	return strings.Join(entries, ", ")
}

func TestTrustedProxies(t *testing.T) {
	c, err := Parse([]byte("grpc_address: 127.0.0.1:9001\nhttp_authz_address: 127.0.0.1:9003\n"+
		"http_authz_trusted_proxies: [127.0.0.1, '::ffff:10.1.2.3', 10.9.8.7/8, 'fd00::/64']\n"), t.TempDir())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var got []string
	for _, p := range c.TrustedProxies() {
		got = append(got, p.String())
	}
	want := []string{"127.0.0.1/32", "10.1.2.3/32", "10.0.0.0/8", "fd00::/64"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TrustedProxies() mismatch (-want +got):\n%s", diff)
	}
}

func TestUnknownKeySuggestions(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string // in minimal: old, new
		want    string
	}{
		{name: "typo at the top", replace: [2]string{"rules:", "grpc_adress: x\nrules:"}, want: `grpc_adress: line *: unknown key "grpc_adress", did you mean "grpc_address"?`},
		{name: "singular for a plural", replace: [2]string{"  clock_skew: 30s", "  clock_skew: 30s\n  audience: demo-api"}, want: `providers[0].audience: line *: unknown key "audience", did you mean "audiences"?`},
		{name: "typo in a flow mapping", replace: [2]string{"match: {path_prefix: /}", "match: {path_prefix: /, methodz: [GET]}"}, want: `rules[0].match.methodz: line *: unknown key "methodz", did you mean "methods"?`},
		{name: "typo in a key source", replace: [2]string{"- jwks_file: keys/jwks.json", "- jwks_fiel: keys/jwks.json"}, want: `did you mean "jwks_file"?`},
		{name: "nothing near", replace: [2]string{"rules:", "tls: {certificate: a}\nrules:"}, want: `tls.certificate: line *: unknown key "certificate" (valid here: cert_file, client_ca_file, key_file)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(minimal, tc.replace[0], tc.replace[1], 1)), t.TempDir())
			// "line *" stands for the line number, which minimal's edits move.
			got := ""
			if err != nil {
				got = regexp.MustCompile(`line \d+`).ReplaceAllString(err.Error(), "line *")
			}
			if !strings.Contains(got, tc.want) || strings.Contains(got, "config.") {
				t.Errorf("Parse(%s) = %v, want %s and no Go type", tc.name, err, tc.want)
			}
		})
	}
}

// FuzzOrigin: an origin Origin accepts is canonical (Origin of it is itself), has no path,
// query, fragment, user or wildcard, and is what a browser's Origin header could be.
func FuzzOrigin(f *testing.F) {
	for _, s := range []string{"https://app.example.com", "HTTP://Localhost:80", "http://[::1]:8001", "https://a.example/",
		"null", "https://*.example.com", "https://u:p@a.example", "https://a.example:443", "http://a.example:", "https://a.example?#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := Origin(s)
		if err != nil {
			return
		}
		if again, err := Origin(o); err != nil || again != o {
			t.Fatalf("Origin(%q) = %q, but Origin(%q) = %q, %v", s, o, o, again, err)
		}
		rest, ok := strings.CutPrefix(o, "https://")
		if !ok {
			rest, ok = strings.CutPrefix(o, "http://")
		}
		if !ok || rest == "" || strings.ContainsAny(rest, "/?#@* ") || strings.ToLower(o) != o {
			t.Fatalf("Origin(%q) = %q: not a lower-case scheme://host[:port]", s, o)
		}
	})
}
