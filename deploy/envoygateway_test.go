package deploy

import (
	"path/filepath"
	"testing"
	"time"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1b1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// authzHealthService is the gRPC health service name jwt-authz reports for Check
// (grpc.health.v1): NOT_SERVING until keys are loaded and once shutdown starts.
const authzHealthService = "envoy.service.auth.v3.Authorization"

// TestEnvoyGateway decodes securitypolicy.yaml strictly into Envoy Gateway's and Gateway
// API's own Go types and checks what it promises: every route but POST /login is checked,
// by the jwt-authz Service's gRPC port, fail-closed with 503, with a short timeout.
func TestEnvoyGateway(t *testing.T) {
	m := manifests(decodeFile(t, filepath.Join("envoy-gateway", "securitypolicy.yaml")))
	base := loadKustomize(t)
	svc := one[corev1.Service](t, base)
	var grpcPort int32
	for _, p := range svc.Spec.Ports {
		if p.Name == grpcPortName {
			grpcPort = p.Port
		}
	}

	sp := one[egv1a1.SecurityPolicy](t, m)
	ea := sp.Spec.ExtAuth
	if ea == nil || ea.GRPC == nil || ea.HTTP != nil {
		t.Fatalf("SecurityPolicy extAuth = %+v, want the gRPC service only", ea)
	}
	if ea.GRPC.BackendRef != nil || len(ea.GRPC.BackendRefs) != 1 {
		t.Fatalf("extAuth.grpc: want exactly one entry in backendRefs (backendRef is deprecated)")
	}
	ref := ea.GRPC.BackendRefs[0].BackendObjectReference
	refNS := sp.Namespace
	if ref.Namespace != nil {
		refNS = string(*ref.Namespace)
	}
	switch {
	case ref.Group != nil && *ref.Group != "", ref.Kind != nil && *ref.Kind != "Service":
		t.Errorf("backendRef group/kind %v/%v, want the core Service", ref.Group, ref.Kind)
	case string(ref.Name) != svc.Name || refNS != svc.Namespace:
		t.Errorf("backendRef %s/%s, want the jwt-authz Service %s/%s", refNS, ref.Name, svc.Namespace, svc.Name)
	case ref.Port == nil || int32(*ref.Port) != grpcPort:
		t.Errorf("backendRef port %d, want the Service's gRPC port %d", ptrValue(ref.Port, 0), grpcPort)
	}
	if ea.Timeout == nil {
		t.Errorf("extAuth.timeout unset: Envoy Gateway's default is 10s")
	} else if d, err := gwDuration(*ea.Timeout); err != nil || d <= 0 || d > maxCheckTimeout {
		t.Errorf("extAuth.timeout %q (%v), want > 0 and <= %v", *ea.Timeout, err, maxCheckTimeout)
	}
	if ea.FailOpen == nil || *ea.FailOpen {
		t.Errorf("extAuth.failOpen = %v, want an explicit false", ea.FailOpen)
	}
	if ea.StatusOnError == nil || *ea.StatusOnError != 503 {
		t.Errorf("extAuth.statusOnError = %v, want 503", ea.StatusOnError)
	}
	if bs := ea.GRPC.BackendSettings; bs == nil || bs.HealthCheck == nil || bs.HealthCheck.Active == nil ||
		bs.HealthCheck.Active.Type != egv1a1.ActiveHealthCheckerTypeGRPC || bs.HealthCheck.Active.GRPC == nil ||
		ptrValue(bs.HealthCheck.Active.GRPC.Service, "") != authzHealthService {
		t.Errorf("extAuth.grpc.backendSettings: want an active gRPC health check of %q", authzHealthService)
	}

	// A cross-namespace backendRef needs a ReferenceGrant in the Service's namespace.
	if refNS != sp.Namespace {
		granted := false
		for _, g := range all[gwapiv1b1.ReferenceGrant](m) {
			if g.Namespace != svc.Namespace {
				continue
			}
			from, to := false, false
			for _, f := range g.Spec.From {
				from = from || (f.Group == egv1a1.GroupName && f.Kind == egv1a1.KindSecurityPolicy && string(f.Namespace) == sp.Namespace)
			}
			for _, x := range g.Spec.To {
				to = to || (x.Group == "" && x.Kind == "Service" && (x.Name == nil || string(*x.Name) == svc.Name))
			}
			granted = granted || (from && to)
		}
		if !granted {
			t.Errorf("no ReferenceGrant in %s lets SecurityPolicies in %s refer to Service %s", svc.Namespace, sp.Namespace, svc.Name)
		}
	}

	// Routes: the targeted ones are checked; the others may only match POST /login exactly.
	targeted := map[string]bool{}
	for _, tr := range sp.Spec.TargetRefs {
		if tr.Group != gwapiv1.GroupName || tr.Kind != "HTTPRoute" {
			t.Errorf("targetRef %s/%s, want HTTPRoutes", tr.Group, tr.Kind)
		}
		targeted[string(tr.Name)] = true
	}
	routes := all[gwapiv1.HTTPRoute](m)
	found := 0
	for _, r := range routes {
		if r.Namespace != sp.Namespace {
			t.Errorf("HTTPRoute %s/%s: a SecurityPolicy targets routes in its own namespace (%s)", r.Namespace, r.Name, sp.Namespace)
		}
		if targeted[r.Name] {
			found++
			continue
		}
		for _, rule := range r.Spec.Rules {
			for _, mt := range rule.Matches {
				var path gwapiv1.HTTPPathMatch
				if mt.Path != nil {
					path = *mt.Path
				}
				typ, value, method := ptrValue(path.Type, ""), ptrValue(path.Value, ""), ptrValue(mt.Method, "")
				if typ != gwapiv1.PathMatchExact || value != "/login" || method != gwapiv1.HTTPMethodPost || len(mt.Headers)+len(mt.QueryParams) > 0 {
					t.Errorf("HTTPRoute %s is not checked by jwt-authz but matches %s %s (%s); only POST /login (Exact) may be public", r.Name, method, value, typ)
				}
			}
			if len(rule.Matches) == 0 {
				t.Errorf("HTTPRoute %s is not checked by jwt-authz and matches every request", r.Name)
			}
		}
	}
	if found != len(targeted) {
		t.Errorf("SecurityPolicy targets %d routes, %d of them in the file", len(targeted), found)
	}
}

func gwDuration(d gwapiv1.Duration) (time.Duration, error) {
	return time.ParseDuration(string(d))
}
