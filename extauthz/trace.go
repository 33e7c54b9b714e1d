package extauthz

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// Tracing: one span per decision, a child of the span of whoever asked. Envoy's ext_authz
// gRPC client sends its own span's context in the call's metadata; Envoy's http_service
// and other proxies send it as request headers; a CheckRequest that came without either
// may still carry the client's traceparent or b3 among the request's headers. The span
// holds the decision's facts, never the token or a claim value (sub and iss are left out:
// they identify a person and the operator did not opt in).

// Tracing configures spans. The zero value traces nothing and costs nothing.
type Tracing struct {
	// Tracer starts the decision spans; nil turns tracing off.
	Tracer trace.Tracer
	// Propagator reads the parent's trace context (W3C traceparent, b3).
	Propagator propagation.TextMapPropagator
}

// spanName is the name of a decision's span.
const spanName = "jwt-authz.Check"

// startSpan starts the decision span for a request through front, a child of the trace
// context that parent finds, if any.
func (s *Server) startSpan(ctx context.Context, front Front, parent propagation.TextMapCarrier) (context.Context, trace.Span) {
	if parent != nil && s.tracing.Propagator != nil {
		ctx = s.tracing.Propagator.Extract(ctx, parent)
	}
	return s.tracing.Tracer.Start(ctx, spanName, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("jwt_authz.front", string(front))))
}

// grpcParent is the trace context of a gRPC Check: from the call's metadata (Envoy's
// ext_authz span), else from the headers in the CheckRequest itself.
func (s *Server) grpcParent(ctx context.Context, in []byte) propagation.TextMapCarrier {
	if md, ok := metadata.FromIncomingContext(ctx); ok && s.hasTraceContext(metadataCarrier(md)) {
		return metadataCarrier(md)
	}
	r, err := parseRequest(in)
	if err != nil {
		return nil
	}
	return requestCarrier{r}
}

func (s *Server) hasTraceContext(c propagation.TextMapCarrier) bool {
	for _, f := range s.tracing.Propagator.Fields() {
		if c.Get(f) != "" {
			return true
		}
	}
	return false
}

// endSpan records d on the decision span in ctx and ends it.
func endSpan(ctx context.Context, d Decision) {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		decision := "deny"
		if d.Allowed {
			decision = "allow"
		}
		span.SetAttributes(
			attribute.String("jwt_authz.decision", decision),
			attribute.String("jwt_authz.reason", string(d.Reason)),
			attribute.Int("jwt_authz.status", d.HTTPStatus),
			attribute.String("jwt_authz.rule", d.Rule),
			attribute.String("jwt_authz.provider", d.Provider),
			attribute.Bool("jwt_authz.cache_hit", d.Cached),
		)
		if d.Reason == ReasonInternal || d.Reason == ReasonKeysUnavailable {
			span.SetStatus(codes.Error, string(d.Reason)) // the server's trouble, not the client's
		}
	}
	span.End()
}

// metadataCarrier reads gRPC metadata (keys are lower case).
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (metadataCarrier) Set(string, string) {}
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// requestCarrier reads the headers of a parsed CheckRequest.
type requestCarrier struct{ r *request }

func (c requestCarrier) Get(key string) string {
	v, n := c.r.header(strings.ToLower(key))
	if n != 1 { // a repeated trace header is ambiguous: start a new trace
		return ""
	}
	return v
}
func (requestCarrier) Set(string, string) {}
func (requestCarrier) Keys() []string     { return nil }

// headersCarrier reads a face's Request headers.
type headersCarrier []Header

func (c headersCarrier) Get(key string) string {
	v, n := "", 0
	for _, h := range c {
		if strings.EqualFold(h.Name, key) {
			v, n = h.Value, n+1
		}
	}
	if n != 1 {
		return ""
	}
	return v
}
func (headersCarrier) Set(string, string) {}
func (headersCarrier) Keys() []string     { return nil }
