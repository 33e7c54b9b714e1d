// Package extauthz is the decision: it reads what Envoy sends in an ext_authz v3 CheckRequest,
// finds and verifies the JWT, applies the route rules and answers with a CheckResponse shaped
// exactly as Envoy expects (see shared/docs/envoy-extauthz.md). It also serves the gRPC API.
package extauthz

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
)

// Server implements envoy.service.auth.v3.Authorization. The Policy it applies can be swapped
// at any time (hot reload); each call uses the Policy current when it started.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	policy     atomic.Pointer[Policy]
	log        *slog.Logger
	decisions  io.Writer // nil: decisions are not logged
	now        func() time.Time
	observe    func(Decision, time.Duration)
	sampleRate float64
	sample     func() float64
	tracing    Tracing
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// Options configure a Server. Every field is optional.
type Options struct {
	// Logger receives what is not a decision (a recovered panic).
	Logger *slog.Logger
	// DecisionLog receives one JSON line per decision, in one Write per line; nil logs no
	// decisions. It should buffer (internal/linewriter): it is called on the Check path.
	DecisionLog io.Writer
	// Now is the clock for token times (tests inject one).
	Now func() time.Time
	// Observe is called once per decision with its duration (metrics).
	Observe func(Decision, time.Duration)
	// AllowSampleRate is the fraction of allow decisions that are logged (denials always are);
	// nil means all. Random is the sampler, for tests.
	AllowSampleRate *float64
	Random          func() float64
	// Tracing starts a span per decision (trace.go); the zero value traces nothing.
	Tracing Tracing
}

// NewServer returns a Server applying p.
func NewServer(p *Policy, opts Options) *Server {
	s := &Server{log: opts.Logger, decisions: opts.DecisionLog, now: opts.Now, observe: opts.Observe, sampleRate: 1, sample: opts.Random, tracing: opts.Tracing}
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

// Check answers one ext_authz request given as a message, for callers that register the
// Server with grpc-go's generated code. It never returns an error: a bad request or token
// is a denial, and even a bug here is turned into a denial rather than a crash or an RPC
// error that failure_mode_allow would let through. Register serves the same decisions
// without decoding and re-encoding messages.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return checkMessage(req, func(dst, in []byte) []byte { return s.AppendCheck(dst, ctx, in) }), nil
}

// AppendCheck answers one serialized CheckRequest, appending the serialized CheckResponse
// to dst, and logs and observes the decision. It never fails (see Check).
func (s *Server) AppendCheck(dst []byte, ctx context.Context, in []byte) (out []byte) {
	start := time.Now()
	p := s.policy.Load()
	if s.tracing.Tracer != nil {
		ctx, _ = s.startSpan(ctx, FrontGRPC, s.grpcParent(ctx, in))
	}
	defer func() {
		if v := recover(); v != nil {
			// A panic's text may quote the request: bounded like the decision log's fields.
			s.log.Error("panic in Check; denying", "panic", clipLogged(fmt.Sprint(v), maxLoggedPath))
			d := Decision{Reason: ReasonInternal, HTTPStatus: http.StatusInternalServerError, Front: FrontGRPC}
			out = p.appendDeny(dst, denial{reason: ReasonInternal, httpStatus: http.StatusInternalServerError,
				code: "server_error", desc: "internal error"}, outcome{}, d)
			s.recordSince(ctx, d, start)
		}
	}()
	out, d := p.AppendCheck(dst, ctx, in, s.now())
	d.Front = FrontGRPC
	s.recordSince(ctx, d, start)
	return out
}

// checkMessage runs a decision on the wire form of req and decodes the answer.
func checkMessage(req *authv3.CheckRequest, appendCheck func(dst, in []byte) []byte) *authv3.CheckResponse {
	in, err := proto.Marshal(req)
	if err != nil { // a string that is not UTF-8: Envoy could not have sent it
		in = []byte{0xff} // not a valid field tag, so it is denied as a malformed request
	}
	resp := new(authv3.CheckResponse)
	if err := proto.Unmarshal(appendCheck(nil, in), resp); err != nil {
		panic("extauthz: a CheckResponse we encoded does not decode: " + err.Error())
	}
	return resp
}

// logDecision writes one line per decision, unless it is an allow the sample leaves out.
func (s *Server) logDecision(_ context.Context, d Decision, at time.Time, elapsed time.Duration) {
	// A shadow denial is what operators measure before enforcing: never sampled away.
	if s.decisions == nil || d.Allowed && d.ShadowDecision != "deny" && s.sampleRate < 1 && s.sample() >= s.sampleRate {
		return
	}
	writeDecision(s.decisions, at, d, elapsed)
}

func randFloat() float64 { return rand.Float64() }
