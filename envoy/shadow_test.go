package envoy

import (
	"net/http"
	"strings"
	"testing"
)

// TestShadowAndCEL runs a shadow rule and a CEL rule through the real Envoy, with ext_authz
// and with the module in process: the shadow rule's would-be decision reaches Envoy's access
// log (from the dynamic metadata) and, through ext_authz, the server's metrics while the
// request is decided by the next rule, and a require.cel comparing a claim with a header
// allows and refuses as written.
func TestShadowAndCEL(t *testing.T) {
	edit := func(t *testing.T, root map[string]any, _ ports) {
		rules, err := list(root, "rules")
		if err != nil {
			t.Fatal(err)
		}
		root["rules"] = append([]any{
			map[string]any{"name": "admin-everywhere", "mode": "shadow",
				"match": map[string]any{"path_prefix": "/api"}, "require": map[string]any{"scopes": []any{"admin"}}},
			map[string]any{"name": "tenant", "match": map[string]any{"path_prefix": "/tenants"},
				"require": map[string]any{"cel": "'x-tenant-id' in request.headers && request.headers['x-tenant-id'] == claims.sub"}},
		}, rules...)
	}
	t.Run("ext_authz", func(t *testing.T) {
		s := startStack(t, stackOptions{editAuthz: edit})
		shadowAndCEL(t, s)
		page := "http://" + local(s.AuthzHTTP) + "/metrics"
		if n := metric(t, page, "jwt_authz_shadow_decisions_total", `rule="admin-everywhere"`, `decision="deny"`, `reason="insufficient_scope"`); n < 1 {
			t.Errorf("jwt_authz_shadow_decisions_total{deny, insufficient_scope} = %v, want at least 1", n)
		}
	})
	t.Run("in process", func(t *testing.T) {
		shadowAndCEL(t, startModuleStack(t, stackOptions{editAuthz: edit}))
	})
}

func shadowAndCEL(t *testing.T, s *stack) {
	alice := http.Header{"Authorization": {"Bearer " + s.login(t, "alice", "alice-password")}}
	admin := http.Header{"Authorization": {"Bearer " + s.login(t, "admin", "admin-password")}}

	// alice lacks admin: enforcing admin-everywhere would refuse her, but it is a shadow
	// rule, so the api rule decides and she reaches the upstream.
	s.do(t, "GET", "/api/things/alice", alice, "").upstream(t, 200)
	s.do(t, "GET", "/api/things/admin", admin, "").upstream(t, 200)
	for _, parts := range [][]string{
		{"GET /api/things/alice 200", "rule=api", "shadow=deny", "shadow_reason=insufficient_scope", "shadow_rule=admin-everywhere"},
		{"GET /api/things/admin 200", "rule=api", "shadow=allow", "shadow_reason=allowed", "shadow_rule=admin-everywhere"},
	} {
		l, err := s.accessLog(parts...)
		if err != nil {
			t.Errorf("Envoy access log: no line with %q:\n%s", parts, s.envoy.Out.String())
			continue
		}
		t.Log(l)
	}
	withTenant := func(h http.Header, tenant string) http.Header {
		h = h.Clone()
		h.Set("X-Tenant-Id", tenant)
		return h
	}
	s.do(t, "GET", "/tenants/alice/orders", withTenant(alice, "alice"), "").upstream(t, 200)
	r := s.do(t, "GET", "/tenants/bob/orders", withTenant(alice, "bob"), "")
	if r.status != 403 || !strings.Contains(string(r.body), `"reason":"cel_denied"`) || !strings.Contains(string(r.body), `"rule":"tenant"`) {
		t.Errorf("GET /tenants/bob/orders (alice, x-tenant-id bob) = %d %s, want 403 cel_denied naming the rule", r.status, clip(r.body))
	}
	if _, err := s.accessLog("GET /tenants/bob/orders 403", "authz_reason=cel_denied", "rule=tenant"); err != nil {
		t.Errorf("Envoy access log: no cel_denied line for /tenants/bob/orders")
	}
}

// TestDynamicMetadataOff turns the decision's dynamic metadata off (dynamic_metadata:
// {enabled: false}), through ext_authz and in process: requests are decided exactly as
// before, and Envoy's access log, which reads the metadata, shows none.
func TestDynamicMetadataOff(t *testing.T) {
	off := func(t *testing.T, root map[string]any, _ ports) {
		root["dynamic_metadata"] = map[string]any{"enabled": false}
	}
	for _, tc := range []struct {
		name  string
		start func(*testing.T, stackOptions) *stack
	}{{"ext_authz", startStack}, {"in process", startModuleStack}} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.start(t, stackOptions{editAuthz: off})
			alice := http.Header{"Authorization": {"Bearer " + s.login(t, "alice", "alice-password")}}
			s.do(t, "GET", "/api/things/alice", alice, "").upstream(t, 200)
			if r := s.do(t, "GET", "/api/things/nobody", nil, ""); r.status != 401 {
				t.Errorf("GET /api/things/nobody without a token = %d, want 401", r.status)
			}
			for _, line := range []string{"GET /api/things/alice 200", "GET /api/things/nobody 401"} {
				l, err := s.accessLog(line)
				if err != nil {
					t.Errorf("Envoy access log: no line %q:\n%s", line, s.envoy.Out.String())
					continue
				}
				if !strings.Contains(l, "authz_reason=- rule=- sub=-") {
					t.Errorf("Envoy access log line %q shows dynamic metadata, want none", l)
				}
			}
		})
	}
}
