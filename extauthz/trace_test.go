package extauthz

import (
	"testing"
	"time"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// TestTraceParent: the decision span joins the trace of the caller: from the gRPC call's
// metadata first (Envoy's ext_authz span), else from the W3C or b3 headers inside the
// CheckRequest; a repeated trace header or none starts a new trace.
func TestTraceParent(t *testing.T) {
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
		other   = "a3ce929d0e0e47364bf92f3577b34da6"
	)
	traceparent := "00-" + traceID + "-" + spanID + "-01"
	tests := []struct {
		name       string
		md         metadata.MD
		headers    []string
		wantTrace  string // "" = a new trace
		wantParent string
	}{
		{name: "traceparent in metadata", md: metadata.Pairs("traceparent", traceparent), wantTrace: traceID, wantParent: spanID},
		{name: "metadata wins over the request's headers", md: metadata.Pairs("traceparent", traceparent),
			headers: hdrs("traceparent", "00-"+other+"-"+spanID+"-01"), wantTrace: traceID, wantParent: spanID},
		{name: "traceparent in the CheckRequest", headers: hdrs("traceparent", traceparent), wantTrace: traceID, wantParent: spanID},
		{name: "b3 single header", headers: hdrs("b3", traceID+"-"+spanID+"-1"), wantTrace: traceID, wantParent: spanID},
		{name: "b3 multiple headers", headers: hdrs("x-b3-traceid", traceID, "x-b3-spanid", spanID, "x-b3-sampled", "1"),
			wantTrace: traceID, wantParent: spanID},
		{name: "repeated traceparent", headers: hdrs("traceparent", traceparent, "traceparent", traceparent)},
		{name: "none"},
		{name: "malformed", headers: hdrs("traceparent", "00-zz-"+spanID+"-01")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			s := NewServer(newPolicy(t, "default_action: allow\n", nil), Options{Tracing: Tracing{
				Tracer:     tp.Tracer("test"),
				Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, b3.New()),
			}})
			ctx := t.Context()
			if tc.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tc.md)
			}
			req := envoyRequest{headers: tc.headers, rawHeader: true}.proto()
			if _, err := s.Check(ctx, req); err != nil {
				t.Fatal(err)
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("Check(%s) ended %d spans, want 1", tc.name, len(spans))
			}
			sp := spans[0]
			gotTrace, gotParent := sp.SpanContext().TraceID().String(), ""
			if sp.Parent().IsValid() {
				gotParent = sp.Parent().SpanID().String()
			}
			if tc.wantTrace == "" {
				if gotParent != "" || gotTrace == traceID {
					t.Errorf("Check(%s) span in trace %s under %q, want a new trace", tc.name, gotTrace, gotParent)
				}
			} else if gotTrace != tc.wantTrace || gotParent != tc.wantParent {
				t.Errorf("Check(%s) span in trace %s under %q, want %s under %s", tc.name, gotTrace, gotParent, tc.wantTrace, tc.wantParent)
			}
			attrs := map[string]string{}
			for _, a := range sp.Attributes() {
				attrs[string(a.Key)] = a.Value.Emit()
			}
			if attrs["jwt_authz.decision"] != "allow" || attrs["jwt_authz.front"] != "grpc" || attrs["jwt_authz.cache_hit"] != "false" {
				t.Errorf("Check(%s) span attributes %v, want decision allow, front grpc, cache_hit false", tc.name, attrs)
			}
		})
	}
}

// BenchmarkCheckTracing: what a traced decision costs, sampled and not, beside tracing off.
func BenchmarkCheckTracing(b *testing.B) {
	fx := newVerifyFixture(b)
	in, err := proto.Marshal(envoyRequest{headers: bearer(sig.mint(b, "ES256", "ec256", nil))}.proto())
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		tracing Tracing
	}{
		{"off", Tracing{}},
		{"sampled", Tracing{Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder())).Tracer("b"), Propagator: propagation.TraceContext{}}},
		{"not sampled", Tracing{Tracer: sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())).Tracer("b"), Propagator: propagation.TraceContext{}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := NewServer(fx.policy, Options{Now: func() time.Time { return testNow }, Tracing: bc.tracing})
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				buf = s.AppendCheck(buf[:0], b.Context(), in)
			}
		})
	}
}
