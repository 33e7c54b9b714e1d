package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestIntrospection(t *testing.T) {
	parse := func(in string) error {
		_, err := Parse([]byte(strings.Replace(minimal, "  clock_skew: 30s", "  clock_skew: 30s\n  introspection: "+in, 1)), t.TempDir())
		return err
	}
	for _, ok := range []string{
		`{endpoint: "https://op.example/introspect", client_id: rs, client_secret_file: s, timeout: 1s, cache_for: 30s, inactive_cache_for: 2s, max_response_bytes: 4096}`,
		`{endpoint: "http://127.0.0.1:8080/introspect", client_id: rs, client_secret_file: s}`,
		`{endpoint: "http://localhost/introspect", client_id: rs, client_secret_file: s}`,
		`{client_id: rs, client_secret_file: s}`, // from https://issuer.example's discovery document
		`{client_id: rs, client_auth: client_secret_basic, client_secret_file: s}`,
		`{client_id: rs, client_auth: private_key_jwt, private_key_file: k.pem, signing_algorithm: ES256}`,
		`{client_id: rs, client_auth: private_key_jwt, private_key_file: k.jwk, signing_algorithm: PS256, key_id: k1, assertion_audience: "https://op.example/introspect"}`,
	} {
		if err := parse(ok); err != nil {
			t.Errorf("Parse(introspection: %s) = %v", ok, err)
		}
	}
	const at = "providers[0].introspection"
	for _, tc := range []struct{ in, want string }{
		{`{endpoint: "http://op.example/introspect", client_id: rs, client_secret_file: s}`, at + ".endpoint"},
		{`{endpoint: "https://user:pw@op.example/", client_id: rs, client_secret_file: s}`, at + ".endpoint"},
		{`{endpoint: "/introspect", client_id: rs, client_secret_file: s}`, at + ".endpoint"},
		{`{endpoint: "https://op.example/", client_secret_file: s}`, at + ".client_id"},
		{`{endpoint: "https://op.example/", client_id: rs}`, at + ".client_secret_file"},
		{`{endpoint: "https://op.example/", client_id: rs, client_secret_file: s, timeout: -1s}`, at + ".timeout"},
		{`{endpoint: "https://op.example/", client_id: rs, client_secret_file: s, max_response_bytes: -1}`, at + ".max_response_bytes"},
		{`{endpoint: "https://op.example/", client_id: rs, client_secret: s}`, at + ".client_secret"},
		{`{client_id: rs, client_auth: client_secret_post, client_secret_file: s}`, at + ".client_auth"},
		{`{client_id: rs, client_auth: private_key_jwt, signing_algorithm: ES256}`, at + ".private_key_file"},
		{`{client_id: rs, client_auth: private_key_jwt, private_key_file: k.pem}`, at + ".signing_algorithm"},
		{`{client_id: rs, client_auth: private_key_jwt, private_key_file: k.pem, signing_algorithm: HS256}`, at + ".signing_algorithm"},
		{`{client_id: rs, client_auth: private_key_jwt, private_key_file: k.pem, signing_algorithm: none}`, at + ".signing_algorithm"},
		{`{client_id: rs, client_auth: private_key_jwt, private_key_file: k.pem, signing_algorithm: ES256, client_secret_file: s}`, at + ".client_secret_file"},
		{`{client_id: rs, client_auth: private_key_jwt, private_key_file: k.pem, signing_algorithm: ES256, assertion_audience: "/x"}`, at + ".assertion_audience"},
		{`{client_id: rs, client_secret_file: s, private_key_file: k.pem}`, at + ".private_key_file"},
		{`{client_id: rs, client_secret_file: s, signing_algorithm: ES256}`, at + ".signing_algorithm"},
	} {
		if err := parse(tc.in); err == nil || !strings.Contains(err.Error(), tc.want+":") {
			t.Errorf("Parse(introspection: %s) = %v, want an error naming %s", tc.in, err, tc.want)
		}
	}
}

// TestIntrospectionDiscovery: without endpoint, the issuer must be an https URL to discover
// it from (not a template, not plain http elsewhere than loopback).
func TestIntrospectionDiscovery(t *testing.T) {
	for _, issuer := range []string{"http://issuer.example", "https://login.example/{tenantid}/v2.0", "spiffe://example.org"} {
		cfg := strings.Replace(minimal, "  issuer: https://issuer.example", "  issuer: "+issuer, 1)
		cfg = strings.Replace(cfg, "  clock_skew: 30s", "  clock_skew: 30s\n  introspection: {client_id: rs, client_secret_file: s}", 1)
		_, err := Parse([]byte(cfg), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "providers[0].introspection.endpoint:") {
			t.Errorf("issuer %s: Parse = %v, want an error naming providers[0].introspection.endpoint", issuer, err)
		}
	}
}

// TestSecretFiles: the secret files read only at load, resolved against the config's folder.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	yaml := strings.Replace(minimal, "  clock_skew: 30s",
		"  clock_skew: 30s\n  introspection: {client_id: rs, client_auth: private_key_jwt, private_key_file: k.pem, signing_algorithm: ES256}", 1) +
		"dpop: {nonce: {secret_file: /run/secrets/nonce.key}, replay_store: {address: '127.0.0.1:6379', password_file: redis.pw}}\n"
	c, err := Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "k.pem"), "/run/secrets/nonce.key", filepath.Join(dir, "redis.pw")}
	if got := c.SecretFiles(); !slices.Equal(got, want) {
		t.Errorf("SecretFiles() = %q, want %q", got, want)
	}
	if c, err = Parse([]byte(minimal), dir); err != nil || len(c.SecretFiles()) != 0 {
		t.Errorf("SecretFiles() of a config without secrets = %q (%v), want none", c.SecretFiles(), err)
	}
}
