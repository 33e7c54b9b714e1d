package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDPoP(t *testing.T) {
	parse := func(top, provider string) (*Config, error) {
		text := strings.Replace(minimal, "  clock_skew: 30s", "  clock_skew: 30s\n  dpop: "+provider, 1)
		return Parse([]byte(top+text), t.TempDir())
	}
	c, err := parse("dpop: {nonce: {secret_file: nonce.key}, replay_store: {address: '127.0.0.1:6379'}}\n", `{required: true}`)
	if err != nil {
		t.Fatalf("Parse(dpop) = %v", err)
	}
	p := c.Providers[0]
	if !slices.Equal(p.DPoP.Algorithms, DPoPAlgorithms) || p.DPoP.MaxAge.D() != DefaultDPoPMaxAge {
		t.Errorf("dpop defaults = %v %v", p.DPoP.Algorithms, p.DPoP.MaxAge)
	}
	if want := (TokenSource{Header: "authorization", Prefix: "DPoP"}); !slices.ContainsFunc(p.TokenSources, func(s TokenSource) bool { return s.Header == want.Header && s.Prefix == want.Prefix }) {
		t.Errorf("token_sources = %+v, want the DPoP scheme added", p.TokenSources)
	}
	if c.DPoP.Nonce.Lifetime.D() != 5*time.Minute || c.DPoP.ReplayStore.Timeout.D() != DefaultReplayTimeout {
		t.Errorf("dpop server defaults = %+v %+v", c.DPoP.Nonce, c.DPoP.ReplayStore)
	}
	for _, tc := range []struct{ top, provider, want string }{
		{"", `{algorithms: [HS256]}`, "providers[0].dpop.algorithms[0]"},
		{"", `{algorithms: [none]}`, "providers[0].dpop.algorithms[0]"},
		{"", `{origin: "https://api.example.com/v1"}`, "providers[0].dpop.origin"},
		{"", `{max_age: 60}`, "providers[0].dpop.max_age"},
		{"dpop: {nonce: {lifetime: 5m}}\n", `{}`, "dpop.nonce.secret_file"},
		{"dpop: {nonce: {secret_file: k, lifetime: 10ms}}\n", `{}`, "dpop.nonce.lifetime"},
		{"dpop: {replay_store: {address: redis}}\n", `{}`, "dpop.replay_store.address"},
		{"dpop: {replay_store: {adress: 'redis:6379'}}\n", `{}`, "dpop.replay_store.adress"},
	} {
		if _, err := parse(tc.top, tc.provider); err == nil || !strings.Contains(err.Error(), tc.want+":") {
			t.Errorf("Parse(%s dpop: %s) = %v, want an error naming %s", tc.top, tc.provider, err, tc.want)
		}
	}
}

// TestDPoPMetadata: a provider with dpop says so in its RFC 9728 document.
func TestDPoPMetadata(t *testing.T) {
	text := "http_address: 127.0.0.1:0\n" + strings.Replace(minimal, "  clock_skew: 30s", `  clock_skew: 30s
  dpop: {required: true, algorithms: [ES256, EdDSA]}
  resource_metadata: {resource: "https://api.example.com", serve: true}`, 1)
	c, err := Parse([]byte(text), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := c.Providers[0].ResourceMetadata
	if !slices.Equal(m.DPoPSigningAlgValuesSupported, []string{"ES256", "EdDSA"}) || !m.DPoPBoundAccessTokensRequired {
		t.Errorf("resource_metadata dpop members = %v, %v; want [ES256 EdDSA], true", m.DPoPSigningAlgValuesSupported, m.DPoPBoundAccessTokensRequired)
	}
}
