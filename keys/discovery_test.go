package keys

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/jwt-authz/jwt-authz/config"
)

func TestDiscovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{}
		client, stop := startPipeIssuer(is)
		defer stop()
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
		rec := &recorder{}
		s, cancel := startSet(t, is.url, []config.Key{remoteSpec("")}, client, rec)
		defer cancel()
		ctx := context.Background()
		if _, found, err := s.Lookup(ctx, "k1"); !found || err != nil {
			t.Fatalf("Lookup(k1) via discovery = %v, %v", found, err)
		}
		if ev := rec.last(); ev.Kind != KindDiscovery || ev.Source != is.url+"/.well-known/openid-configuration" || ev.URL != is.url+"/jwks" {
			t.Errorf("event = %+v, want discovery from the well-known URL, JWKS from /jwks", ev)
		}

		// The provider moves its keys: an unknown kid follows the document at once.
		is.set(func(is *testIssuer) {
			is.jwksPath = "/v2/jwks"
			is.keys = []jose.JSONWebKey{ecJWK(t, "k2")}
		})
		if _, found, err := s.Lookup(ctx, "k2"); !found || err != nil {
			t.Fatalf("Lookup(k2) after jwks_uri moved = %v, %v; want found", found, err)
		}
		if diff := cmp.Diff([]string{"k2"}, kids(s)); diff != "" {
			t.Errorf("kids after the move (-want +got):\n%s", diff)
		}

		// And the scheduled refresh follows it too.
		is.set(func(is *testIssuer) {
			is.jwksPath = "/v3/jwks"
			is.keys = []jose.JSONWebKey{ecJWK(t, "k3")}
		})
		time.Sleep(config.DefaultRefreshInterval + time.Second)
		if diff := cmp.Diff([]string{"k3"}, kids(s)); diff != "" {
			t.Errorf("kids after a refresh (-want +got):\n%s", diff)
		}
		if ev := rec.last(); ev.URL != is.url+"/v3/jwks" {
			t.Errorf("event URL = %q, want the new jwks_uri", ev.URL)
		}
	})
}

// OpenID Connect Discovery §4.3: the document's issuer must be the configured one exactly.
func TestDiscoveryIssuerMismatch(t *testing.T) {
	for _, iss := range []string{"https://evil.test", "http://issuer.test/", "HTTP://issuer.test", ""} {
		synctest.Test(t, func(t *testing.T) {
			is := &testIssuer{issuer: iss}
			if iss == "" {
				is.body = []byte("not json")
			}
			client, stop := startPipeIssuer(is)
			defer stop()
			is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
			rec := &recorder{}
			s, cancel := startSet(t, is.url, []config.Key{remoteSpec("")}, client, rec)
			defer cancel()
			want := ErrIssuerMismatch
			if iss == "" {
				want = nil // the discovery document is fine; the JWKS is not JSON
			}
			ev := rec.last()
			if ev.Result != ResultError || (want != nil && !errors.Is(ev.Err, want)) {
				t.Errorf("issuer %q: event = %+v, want error %v", iss, ev, want)
			}
			if _, found, err := s.Lookup(context.Background(), "k1"); found || !errors.Is(err, ErrNoKeys) {
				t.Errorf("issuer %q: Lookup(k1) = %v, %v; want %v", iss, found, err, ErrNoKeys)
			}
			if s.Ready() {
				t.Errorf("issuer %q: Ready() = true", iss)
			}
		})
	}
}

func TestDiscoveryURL(t *testing.T) {
	for issuer, want := range map[string]string{
		"https://id.example.com":          "https://id.example.com/.well-known/openid-configuration",
		"https://id.example.com/":         "https://id.example.com/.well-known/openid-configuration",
		"https://id.example.com/tenant/1": "https://id.example.com/tenant/1/.well-known/openid-configuration",
	} {
		s, err := NewSet(issuer, []config.Key{remoteSpec("")}, nil, Options{})
		if err != nil {
			t.Fatalf("NewSet(%q) = %v", issuer, err)
		}
		if got := s.sources[0].rem.discoveryURL; got != want {
			t.Errorf("NewSet(%q) discovery URL = %q, want %q", issuer, got, want)
		}
	}
	if _, err := NewSet("not a url", []config.Key{remoteSpec("")}, nil, Options{}); !errors.Is(err, ErrMalformed) {
		t.Errorf(`NewSet("not a url", discovery) = %v, want %v`, err, ErrMalformed)
	}
}

// Entra ID multi-tenant: the provider's issuer is a template, discovery is fetched from a
// configured discovery_uri, and the document's issuer is the same template.
func TestDiscoveryIssuerTemplate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const template = "https://login.microsoftonline.com/{tenantid}/v2.0"
		is := &testIssuer{issuer: template}
		client, stop := startPipeIssuer(is)
		defer stop()
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
		spec := remoteSpec("")
		spec.DiscoveryURI = is.url + "/.well-known/openid-configuration"
		rec := &recorder{}
		s, cancel := startSet(t, template, []config.Key{spec}, client, rec)
		defer cancel()
		if _, found, err := s.Lookup(context.Background(), "k1"); !found || err != nil {
			t.Fatalf("Lookup(k1) = %v, %v; want the key (events %+v)", found, err, rec.events())
		}
		if ev := rec.last(); ev.Source != spec.DiscoveryURI {
			t.Errorf("event source = %q, want the discovery_uri", ev.Source)
		}

		// A document naming one tenant does not vouch for the template.
		is.set(func(is *testIssuer) { is.issuer = "https://login.microsoftonline.com/contoso/v2.0" })
		time.Sleep(config.DefaultRefreshInterval + time.Second)
		if ev := rec.last(); !errors.Is(ev.Err, ErrIssuerMismatch) {
			t.Errorf("event = %+v, want %v", ev, ErrIssuerMismatch)
		}
	})
}
