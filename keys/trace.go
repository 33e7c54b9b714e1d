package keys

import (
	"context"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Spans for key fetches, so a decision slowed by a fetch shows why: a refetch for an
// unknown kid is a child of the decision that asked (through the shared fetch, which runs
// on the Set's own context), and each remote fetch a child of that. Scheduled refreshes
// start traces of their own. Spans carry facts about the source, never key material.

const tracerName = "github.com/jwt-authz/jwt-authz/keys"

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// startFetchSpan starts the span of one fetch of src.
func (s *Set) startFetchSpan(ctx context.Context, src *source, trigger Trigger) (context.Context, trace.Span) {
	return s.tracer.Start(ctx, "jwt-authz.keys.fetch", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("jwt_authz.keys.issuer", s.issuer),
			attribute.String("jwt_authz.keys.kind", string(src.kind)),
			attribute.String("jwt_authz.keys.source", withoutUserinfo(src.name)),
			attribute.String("jwt_authz.keys.trigger", string(trigger)),
		))
}

// endFetchSpan records the fetch's outcome and ends span.
func endFetchSpan(span trace.Span, ev FetchEvent) {
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("jwt_authz.keys.url", withoutUserinfo(ev.URL)),
			attribute.String("jwt_authz.keys.result", string(ev.Result)),
			attribute.Int("jwt_authz.keys.count", ev.Keys),
		)
		if ev.Err != nil {
			span.SetStatus(codes.Error, ev.Err.Error())
		}
	}
	span.End()
}

// withoutUserinfo drops a user and password from a URL: they are secrets.
func withoutUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
