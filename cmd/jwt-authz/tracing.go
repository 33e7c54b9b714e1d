package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/extauthz"
)

// tracing is the OpenTelemetry pipeline: spans of decisions and key fetches, batched and
// sent over OTLP to where the standard OTEL_* environment variables say
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _HEADERS, _PROTOCOL,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES...).
type tracing struct {
	provider *sdktrace.TracerProvider // nil when tracing is off
}

// newTracing starts the pipeline cfg asks for. Off (the default, or OTEL_SDK_DISABLED=true)
// it costs nothing: no span is started on the decision path.
func newTracing(ctx context.Context, cfg config.Tracing) (*tracing, error) {
	if !cfg.Enabled || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return &tracing{}, nil
	}
	exp, err := newExporter(ctx)
	if err != nil {
		return nil, err
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "jwt-authz"), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return &tracing{provider: sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		// A request that comes with a trace context keeps its sampling decision; new
		// traces are sampled at the configured ratio.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*cfg.SamplingRatio))),
	)}, nil
}

// newExporter is the OTLP exporter for OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: grpc or
// http/protobuf (the specification's default). Each reads its endpoint, headers, timeout
// and TLS settings from the environment itself.
func newExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch protocol {
	case "grpc":
		return otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL=%q: want grpc or http/protobuf", protocol)
	}
}

// forDecisions is what the decision server needs; the zero value when off.
func (t *tracing) forDecisions() extauthz.Tracing {
	if t.provider == nil {
		return extauthz.Tracing{}
	}
	return extauthz.Tracing{
		Tracer: t.provider.Tracer("github.com/jwt-authz/jwt-authz/extauthz"),
		// Envoy sends W3C trace context or b3 (single or multiple headers), depending on
		// its tracer; both are read.
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, b3.New()),
	}
}

// forKeys is what key sets need: nil when off.
func (t *tracing) forKeys() trace.TracerProvider {
	if t.provider == nil {
		return nil
	}
	return t.provider
}

// shutdown sends the spans still buffered.
func (t *tracing) shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}
