package keys

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jwt-authz/jwt-authz/config"
)

// spiffeKey is a JWK of a SPIFFE bundle: use is jwt-svid or x509-svid.
func spiffeKey(t *testing.T, kid, use string) map[string]any {
	t.Helper()
	k := ecJWK(t, kid)
	k.Use = ""
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, k), &m); err != nil {
		t.Fatal(err)
	}
	m["use"] = use
	return m
}

func TestParseSPIFFEBundle(t *testing.T) {
	bundle := map[string]any{
		"spiffe_sequence":     7,
		"spiffe_refresh_hint": 300,
		"keys": []any{
			spiffeKey(t, "jwt-1", "jwt-svid"),
			spiffeKey(t, "x509-1", "x509-svid"),
			map[string]any{"kty": "OKP", "crv": "X25519", "kid": "x-1", "use": "jwt-svid", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
			spiffeKey(t, "no-use", ""),
		},
	}
	for _, o := range []origin{fromFile, fromRemote} {
		keys, skipped, hint, err := parseSPIFFEBundle(mustJSON(t, bundle), o)
		if err != nil {
			t.Fatalf("parseSPIFFEBundle(origin %d) = %v", o, err)
		}
		var got []string
		for _, k := range keys {
			got = append(got, k.KeyID)
		}
		if diff := cmp.Diff([]string{"jwt-1"}, got); diff != "" {
			t.Errorf("parseSPIFFEBundle(origin %d) kids (-want +got):\n%s", o, diff)
		}
		if len(skipped) != 1 || !errors.Is(skipped[0], ErrUnsupportedKey) {
			t.Errorf("parseSPIFFEBundle(origin %d) skipped %v, want the X25519 key only", o, skipped)
		}
		if hint != 300*time.Second {
			t.Errorf("parseSPIFFEBundle(origin %d) hint = %v, want 5m", o, hint)
		}
	}
	for _, doc := range []string{`{"keys":[]}`, `{"keys":[` + string(mustJSON(t, spiffeKey(t, "x", "x509-svid"))) + `]}`, `{}`, `nope`} {
		if _, _, _, err := parseSPIFFEBundle([]byte(doc), fromRemote); err == nil {
			t.Errorf("parseSPIFFEBundle(%s) = nil error, want one: no jwt-svid key", doc)
		}
	}
}

// A bundle from a SPIFFE bundle endpoint, refreshed on its spiffe_refresh_hint, and one
// from a file the SPIRE agent writes.
func TestSPIFFEBundleSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{}
		client, stop := startPipeIssuer(is)
		defer stop()
		is.set(func(is *testIssuer) {
			is.body = mustJSON(t, map[string]any{"spiffe_refresh_hint": 120, "keys": []any{spiffeKey(t, "jwt-1", "jwt-svid")}})
		})
		dir := t.TempDir()
		file := filepath.Join(dir, "bundle.json")
		if err := os.WriteFile(file, mustJSON(t, map[string]any{"keys": []any{spiffeKey(t, "jwt-2", "jwt-svid"), spiffeKey(t, "x", "x509-svid")}}), 0o600); err != nil {
			t.Fatal(err)
		}
		spec := remoteSpec("")
		spec.Discovery, spec.SPIFFEBundleURI = false, is.url+"/bundle"
		is.set(func(is *testIssuer) { is.jwksPath = "/bundle" })
		rec := &recorder{}
		s, cancel := startSet(t, "spiffe://example.org", []config.Key{spec, {SPIFFEBundleFile: file}}, client, rec)
		defer cancel()
		if diff := cmp.Diff([]string{"jwt-1", "jwt-2"}, kids(s)); diff != "" {
			t.Errorf("kids (-want +got):\n%s", diff)
		}
		var remote FetchEvent
		for _, ev := range rec.events() {
			if ev.Kind == KindSPIFFEBundleURI {
				remote = ev
			}
		}
		// 120s is inside [min_refresh_interval, max_refresh_interval]; up to 10% jitter.
		if remote.Result != ResultOK || remote.Next > 120*time.Second || remote.Next < 108*time.Second {
			t.Errorf("bundle endpoint event = %+v, want ok and the next fetch after about the 120s hint", remote)
		}
		if _, found, err := s.Lookup(context.Background(), "x"); found || err != nil {
			t.Errorf("Lookup(x509-svid key) = %v, %v; want not found", found, err)
		}
	})
}
