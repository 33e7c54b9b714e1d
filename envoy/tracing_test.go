package envoy

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// TestTracing: Envoy with OpenTelemetry tracing on and jwt-authz with tracing on both
// export to an OTLP receiver run by the test. A request through Envoy produces Envoy's
// spans and jwt-authz's decision span in the same trace, the decision span a child of
// Envoy's span for the ext_authz call, carrying the decision's facts and no claim value.
// A token with a kid jwt-authz does not hold makes it refetch the keys: the refetch and
// the JWKS fetch are spans under that request's decision span.
func TestTracing(t *testing.T) {
	recv := startOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+recv.addr)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // ms: export soon, not every 5s
	s := startStack(t, stackOptions{
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			root["tracing"] = map[string]any{"enabled": true}
		},
		editEnvoy: func(t *testing.T, root map[string]any, _ ports) {
			h, err := hcm(root)
			if err != nil {
				t.Fatal(err)
			}
			h["tracing"] = map[string]any{
				"random_sampling": map[string]any{"value": 100},
				"provider": map[string]any{
					"name": "envoy.tracers.opentelemetry",
					"typed_config": map[string]any{
						"@type":        "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
						"grpc_service": map[string]any{"envoy_grpc": map[string]any{"cluster_name": "otlp"}, "timeout": "1s"},
						"service_name": "envoy",
					},
				},
			}
			host, port, _ := net.SplitHostPort(recv.addr)
			clusters, err := list(root, "static_resources", "clusters")
			if err != nil {
				t.Fatal(err)
			}
			root["static_resources"].(map[string]any)["clusters"] = append(clusters, map[string]any{
				"name": "otlp", "type": "STATIC", "connect_timeout": "1s",
				"typed_extension_protocol_options": map[string]any{
					"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
						"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
						"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}},
					},
				},
				"load_assignment": map[string]any{"cluster_name": "otlp", "endpoints": []any{map[string]any{
					"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{"address": map[string]any{
						"socket_address": map[string]any{"address": host, "port_value": port}}}}},
				}}},
			})
		},
	})

	token, err := s.accessToken("alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do(t, "GET", "/api/things", http.Header{"Authorization": {"Bearer " + token}}, ""); r.status != http.StatusOK {
		t.Fatalf("GET /api/things with alice's token = %d, want 200", r.status)
	}
	allow := recv.waitFor(t, "jwt-authz's span of the allowed request", func(sp otlpSpan) bool {
		return sp.service == "jwt-authz" && sp.name == "jwt-authz.Check" && sp.attrs["jwt_authz.decision"] == "allow"
	})
	parent := recv.waitFor(t, "Envoy's parent of jwt-authz's span", func(sp otlpSpan) bool {
		return sp.service == "envoy" && sp.spanID == allow.parentID
	})
	t.Logf("Envoy span %q (%s) -> jwt-authz span %q (%s), trace %s", parent.name, parent.spanID, allow.name, allow.spanID, allow.traceID)
	if parent.traceID != allow.traceID {
		t.Errorf("jwt-authz span in trace %s, its Envoy parent in %s", allow.traceID, parent.traceID)
	}
	for k, want := range map[string]string{"jwt_authz.reason": "allowed", "jwt_authz.rule": "api", "jwt_authz.provider": "demo",
		"jwt_authz.front": "grpc", "jwt_authz.status": "200"} {
		if got := allow.attrs[k]; got != want {
			t.Errorf("jwt-authz span %s = %q, want %q (all: %v)", k, got, want, allow.attrs)
		}
	}
	for k, v := range allow.attrs {
		if strings.Contains(v, "alice") || strings.Contains(v, token) || strings.Contains(v, "read") {
			t.Errorf("jwt-authz span attribute %s = %q: a claim value or the token", k, redact(v))
		}
	}

	// A genuine signature under a kid the issuer never published: jwt-authz refetches.
	unknown := mint(t, s.key, "kid-nobody-published", s.claims())
	if r := s.do(t, "GET", "/api/things", http.Header{"Authorization": {"Bearer " + unknown}}, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("GET /api/things with an unknown kid = %d, want 401", r.status)
	}
	deny := recv.waitFor(t, "jwt-authz's span of the unknown-kid request", func(sp otlpSpan) bool {
		return sp.service == "jwt-authz" && sp.name == "jwt-authz.Check" && sp.attrs["jwt_authz.decision"] == "deny"
	})
	refetch := recv.waitFor(t, "the refetch span", func(sp otlpSpan) bool {
		return sp.name == "jwt-authz.keys.refetch" && sp.parentID == deny.spanID
	})
	fetch := recv.waitFor(t, "the JWKS fetch span", func(sp otlpSpan) bool {
		return sp.name == "jwt-authz.keys.fetch" && sp.parentID == refetch.spanID
	})
	t.Logf("deny span %s -> refetch %s -> fetch %s %v", deny.spanID, refetch.spanID, fetch.spanID, fetch.attrs)
	if fetch.traceID != deny.traceID || fetch.attrs["jwt_authz.keys.trigger"] != "unknown_kid" || fetch.attrs["jwt_authz.keys.result"] == "" {
		t.Errorf("fetch span %+v, want trigger unknown_kid and a result in trace %s", fetch, deny.traceID)
	}
}

// otlpSpan is one span as the receiver got it.
type otlpSpan struct {
	service, name             string
	traceID, spanID, parentID string
	attrs                     map[string]string
}

// otlpReceiver is an OTLP/gRPC trace collector on 127.0.0.1 that keeps every span.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string

	mu    sync.Mutex
	spans []otlpSpan
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: lis.Addr().String()}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, r)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return r
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, a := range sp.GetAttributes() {
					v := a.GetValue()
					switch {
					case v.GetStringValue() != "":
						attrs[a.GetKey()] = v.GetStringValue()
					default:
						attrs[a.GetKey()] = fmt.Sprint(firstNonZero(v.GetIntValue(), v.GetBoolValue()))
					}
				}
				r.spans = append(r.spans, otlpSpan{service: service, name: sp.GetName(),
					traceID: hex.EncodeToString(sp.GetTraceId()), spanID: hex.EncodeToString(sp.GetSpanId()),
					parentID: hex.EncodeToString(sp.GetParentSpanId()), attrs: attrs})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func firstNonZero(i int64, b bool) any {
	if i != 0 {
		return i
	}
	return b
}

// waitFor returns the first span that match accepts, waiting up to 30s: Envoy exports its
// spans every few seconds.
func (r *otlpReceiver) waitFor(t *testing.T, what string, match func(otlpSpan) bool) otlpSpan {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		for _, sp := range r.spans {
			if match(sp) {
				r.mu.Unlock()
				return sp
			}
		}
		n := len(r.spans)
		var names []string
		for _, sp := range r.spans {
			names = append(names, sp.service+":"+sp.name+"("+sp.spanID+"<-"+sp.parentID+")")
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s among %d spans received in 30s: %v", what, n, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
