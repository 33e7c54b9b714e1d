// Package extauthz is the decision: it reads what Envoy sends in an ext_authz v3 CheckRequest,
// finds and verifies the JWT, applies the route rules and answers with a CheckResponse shaped
// exactly as Envoy expects (see shared/docs/envoy-extauthz.md). It also serves the gRPC API.
package extauthz

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// Server implements envoy.service.auth.v3.Authorization. The Policy it applies can be swapped
// at any time (hot reload); each call uses the Policy current when it started.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	policy     atomic.Pointer[Policy]
	log        *slog.Logger
	now        func() time.Time
	observe    func(Decision, time.Duration)
	sampleRate float64
	sample     func() float64
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// Options configure a Server. Every field is optional.
type Options struct {
	Logger *slog.Logger
	// Now is the clock for token times (tests inject one).
	Now func() time.Time
	// Observe is called once per decision with its duration (metrics).
	Observe func(Decision, time.Duration)
	// AllowSampleRate is the fraction of allow decisions that are logged (denials always are);
	// nil means all. Random is the sampler, for tests.
	AllowSampleRate *float64
	Random          func() float64
}

// NewServer returns a Server applying p.
func NewServer(p *Policy, opts Options) *Server {
	s := &Server{log: opts.Logger, now: opts.Now, observe: opts.Observe, sampleRate: 1, sample: opts.Random}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.AllowSampleRate != nil {
		s.sampleRate = *opts.AllowSampleRate
	}
	if s.sample == nil {
		s.sample = randFloat
	}
	s.policy.Store(p)
	return s
}

// SetPolicy swaps in a new Policy for calls that start from now on.
func (s *Server) SetPolicy(p *Policy) { s.policy.Store(p) }

// Policy returns the Policy in force.
func (s *Server) Policy() *Policy { return s.policy.Load() }

// Check answers one ext_authz request. It returns a Go error never: a bad request or token
// is a denial, and even a bug here is turned into a denial rather than a crash or an RPC
// error that failure_mode_allow would let through.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, _ error) {
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in Check; denying", "panic", v)
			d := Decision{Reason: ReasonInternal, HTTPStatus: http.StatusInternalServerError}
			resp = s.policy.Load().denyResponse(denial{reason: ReasonInternal, httpStatus: http.StatusInternalServerError,
				code: "server_error", desc: "internal error"}, outcome{}, d)
			if s.observe != nil {
				s.observe(d, time.Since(start))
			}
		}
	}()
	resp, d := s.policy.Load().Check(ctx, req, s.now())
	elapsed := time.Since(start)
	if s.observe != nil {
		s.observe(d, elapsed)
	}
	s.logDecision(ctx, d, elapsed)
	return resp, nil
}

// logDecision writes one line per decision. It never sees the token.
func (s *Server) logDecision(ctx context.Context, d Decision, elapsed time.Duration) {
	if d.Allowed && s.sampleRate < 1 && s.sample() >= s.sampleRate {
		return
	}
	level := slog.LevelInfo
	decision := "allow"
	if !d.Allowed {
		decision = "deny"
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	s.log.LogAttrs(ctx, level, "decision",
		slog.String("decision", decision),
		slog.String("reason", string(d.Reason)),
		slog.Int("status", d.HTTPStatus),
		slog.String("rule", d.Rule),
		slog.String("provider", d.Provider),
		slog.String("iss", d.Issuer),
		slog.String("sub", d.Subject),
		slog.String("kid", d.KID),
		slog.String("method", d.Method),
		slog.String("path", d.Path),
		slog.Duration("duration", elapsed),
		slog.String("x-request-id", d.RequestID),
	)
}

func randFloat() float64 { return rand.Float64() }
