package config

// Tracing turns on OpenTelemetry traces: one span per decision, parented on the trace
// context Envoy sends, and child spans for key fetches. Where the spans go (the OTLP
// endpoint, protocol, headers, service name) is set by the standard OTEL_* environment
// variables, as for any OpenTelemetry SDK.
type Tracing struct {
	// Enabled turns tracing on; it is off by default.
	Enabled bool `yaml:"enabled"`
	// SamplingRatio is the fraction of new traces recorded (0..1, default 1). A request
	// that arrives with a trace context follows the sampling decision in it.
	SamplingRatio *float64 `yaml:"sampling_ratio"`
}

func (t *Tracing) setDefaults() {
	if t.SamplingRatio == nil {
		t.SamplingRatio = ptr(1.0)
	}
}

func (t *Tracing) validate(bad func(path, format string, args ...any)) {
	if r := *t.SamplingRatio; !(r >= 0 && r <= 1) { // also refuses NaN
		bad("tracing.sampling_ratio", "must be between 0 and 1, got %v", r)
	}
}
