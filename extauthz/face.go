package extauthz

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The decision has several faces. The gRPC face (AppendCheck) reads Envoy's CheckRequest
// bytes and writes CheckResponse bytes; every other face (HTTP forward-auth, an in-process
// module) fills a Request, calls Decide and renders the Outcome in its own protocol. Both
// paths run the same decide on the same request view, so a rule, a token and a reason mean
// the same thing behind every front door.

// Front names the face a request came through. It labels the decision log and metrics,
// so its values are a closed set.
type Front string

// Fronts.
const (
	FrontGRPC        Front = "grpc"         // Envoy ext_authz, gRPC Check
	FrontEnvoyHTTP   Front = "envoy_http"   // Envoy ext_authz http_service
	FrontAuthRequest Front = "auth_request" // nginx auth_request: X-Original-Method/-URI
	FrontForwardAuth Front = "forward_auth" // Traefik forwardAuth, Caddy forward_auth: X-Forwarded-*
	FrontModule      Front = "envoy_module" // the in-process Envoy dynamic module (envoy/module)
)

// Fronts lists every Front, for metrics that pre-declare their label values.
var Fronts = []Front{FrontGRPC, FrontEnvoyHTTP, FrontAuthRequest, FrontForwardAuth, FrontModule}

// Header is one HTTP header field.
type Header struct{ Name, Value string }

// Request is the view of one HTTP request that a face fills for Decide: the original
// request the proxy is asking about, not the request that carried the question.
type Request struct {
	Method string
	Host   string // the authority as the client sent it; a port is allowed
	Path   string // the request target in origin form: path and query, as sent
	// Scheme is the request's scheme (http or https) when the face knows it, as Envoy's
	// :scheme; empty is taken as https. DPoP compares a proof's htu with it.
	Scheme string
	// Headers as sent: names in any case, a repeated header as separate entries (so two
	// credentials are seen as two, never joined into one).
	Headers []Header
	// PeerCertificateDigest, when set, answers the hex SHA-256 of the DER of the client
	// certificate the TLS connection presented, or "" without one: the peer certificate
	// for RFC 8705 binding (certificate_binding without a header). Decide calls it only
	// for a certificate-bound token, on the caller's goroutine, before it returns.
	PeerCertificateDigest func() string
}

// view is r as the decision reads it: the header_map form of a CheckRequest, which keeps
// repeated headers apart and matches names without regard to case.
func (r *Request) view(v *request) *request {
	*v = request{http: true, raw: true, wireMethod: r.Method, wireHost: r.Host, wirePath: r.Path, scheme: r.Scheme,
		peerDigest: r.PeerCertificateDigest}
	v.rawHeaders = v.grow(nil) // the request's own buffer holds a typical request's headers
	for _, h := range r.Headers {
		v.rawHeaders = append(v.rawHeaders, field{h.Name, h.Value})
	}
	v.finish()
	return v
}

// Outcome is a decision and what a face needs to answer it. Decision holds the facts
// for the log and metrics.
type Outcome struct {
	Decision
	p *Policy
	r *request
	o outcome
	// view is what r points at: one allocation per Decide, and none when the face hands
	// the Outcome back (Release).
	view request
}

// outcomes recycles Outcomes handed back by Release: at ~1.7 KiB (the request view
// included) one per decision was most of what a cached decision allocated, and on the
// in-process module that garbage is collected on Envoy's worker cores.
var outcomes = sync.Pool{New: func() any { return new(Outcome) }}

// Decide decides one request at now. It never fails: a problem with the request or its
// token is a denial.
func (p *Policy) Decide(ctx context.Context, req *Request, now time.Time) *Outcome {
	out := outcomes.Get().(*Outcome)
	r := req.view(&out.view)
	out.o, out.Decision = p.decide(ctx, r, now)
	out.p, out.r = p, r
	return out
}

// DynamicMetadata reports whether the config hands decisions to Envoy's dynamic metadata
// (dynamic_metadata.enabled, on by default).
func (o *Outcome) DynamicMetadata() bool { return !o.p.noMetadata }

// Release hands o back for a later Decide to reuse. A face may call it once it has
// answered and recorded o; after that neither o nor anything its methods returned may be
// used. Not calling it is fine: o is then collected as usual.
func (o *Outcome) Release() {
	*o = Outcome{}
	outcomes.Put(o)
}

// Upstream is what an allow adds to the request going upstream: the identity headers
// (claims_to_headers, forward_payload_header) and, when the credential came in a cookie
// that must not be forwarded, the cookie header without it. Nil for a denial.
func (o *Outcome) Upstream() []Header {
	var hs []Header
	o.EachUpstream(func(h Header) { hs = append(hs, h) })
	return hs
}

// EachUpstream calls yield with each header of Upstream, in its order, and builds no list:
// the in-process face's allow allocates none.
func (o *Outcome) EachUpstream(yield func(Header)) {
	if !o.Allowed || o.o.token == nil {
		return
	}
	id := o.o.token
	wire := id.headerWire
	for len(wire) > 0 { // OkHttpResponse.headers entries, as the gRPC face sends them
		_, _, n := protowire.ConsumeTag(wire)
		opt, m := protowire.ConsumeBytes(wire[n:])
		wire = wire[n+m:]
		eachBytesField(opt, func(num protowire.Number, v []byte) error {
			if num == fieldOptionHeader {
				h, _ := parseHeaderValue(v)
				yield(Header{h.name, h.value})
			}
			return nil
		})
	}
	if !id.provider.forwardToken && o.o.source.kind == fromCookie {
		if kept := cookiesWithout(o.r, o.o.source.name); kept != "" {
			yield(Header{"cookie", kept})
		}
	}
}

// Remove names the headers to remove from the request going upstream on an allow: every
// header the server could inject and this allow does not set (so a client's copy never
// reaches the upstream), and the credential's header when its provider does not forward
// it. A credential in the query string cannot be removed by a header: the operator must
// not use query tokens with forward_token: false behind an HTTP face (docs/front-doors.md).
func (o *Outcome) Remove() []string {
	var remove []string
	o.EachRemove(func(name string) { remove = append(remove, name) })
	return remove
}

// EachRemove calls yield with each name of Remove, in its order, and builds no list: the
// in-process face's allow allocates none.
func (o *Outcome) EachRemove(yield func(name string)) {
	if !o.Allowed {
		return
	}
	id := o.o.token
	if id == nil {
		for _, h := range o.p.injectable {
			yield(h)
		}
		return
	}
	if !id.provider.forwardToken { // the credential first, in the order the gRPC face sends them
		switch src := o.o.source; {
		case src.kind == fromHeader:
			yield(src.name)
		case src.kind == fromCookie && cookiesWithout(o.r, src.name) == "":
			yield("cookie")
		}
	}
	for _, h := range o.p.injectable {
		if !id.provider.sets(id.setMask, h) {
			yield(h)
		}
	}
}

// Denial is the HTTP answer to a denial: its status is Decision.HTTPStatus, headers
// (content type, cache-control and, for a credential problem, the RFC 6750 challenge) and
// a JSON body naming the reason. Empty for an allow.
func (o *Outcome) Denial() (headers []Header, body []byte) {
	if o.Allowed {
		return nil, nil
	}
	return denialHeaders(o.o.denial), denialBody(o.o.denial)
}

// refusals are the denials a face gives before there is a request to decide.
var refusals = map[Reason]denial{
	ReasonBadRequest: {reason: ReasonBadRequest, httpStatus: http.StatusBadRequest, code: "invalid_request",
		desc: "the authorization request is malformed"},
	ReasonUntrustedProxy: forbidden(ReasonUntrustedProxy, "forwarded request details are accepted only from a trusted proxy"),
}

// Refuse is the outcome for a request a face could not read (ReasonBadRequest) or will not
// believe (ReasonUntrustedProxy), logged and counted like any decision.
func (s *Server) Refuse(ctx context.Context, front Front, reason Reason, method, path string) *Outcome {
	dn, ok := refusals[reason]
	if !ok {
		dn = refusals[ReasonBadRequest]
	}
	d := Decision{Reason: dn.reason, HTTPStatus: dn.httpStatus, Front: front, Method: method, Path: truncate(path, 1024)}
	if s.tracing.Tracer != nil {
		ctx, _ = s.startSpan(ctx, front, nil)
	}
	s.record(ctx, d, time.Now(), 0)
	return &Outcome{Decision: d, p: s.policy.Load(), o: outcome{reason: dn.reason, denial: dn}}
}

// Decide decides one request under the Policy in force, and logs and observes it. It
// never fails: even a bug is an internal-error denial, never a crash or an allow.
func (s *Server) Decide(ctx context.Context, front Front, req *Request) (out *Outcome) {
	start := time.Now()
	p := s.policy.Load()
	if s.tracing.Tracer != nil {
		var headers headersCarrier
		if req != nil {
			headers = req.Headers
		}
		ctx, _ = s.startSpan(ctx, front, headers)
	}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in Decide; denying", "panic", clipLogged(fmt.Sprint(v), maxLoggedPath), "front", string(front))
			dn := denial{reason: ReasonInternal, httpStatus: http.StatusInternalServerError, code: "server_error", desc: "internal error"}
			d := Decision{Reason: ReasonInternal, HTTPStatus: http.StatusInternalServerError, Front: front}
			out = &Outcome{Decision: d, p: p, o: outcome{reason: ReasonInternal, denial: dn}}
			s.recordSince(ctx, d, start)
		}
	}()
	out = p.Decide(ctx, req, s.now())
	out.Front = front
	s.recordSince(ctx, out.Decision, start)
	return out
}

// Record logs and observes an outcome a face obtained from Policy.Decide itself, as Decide
// would have. The in-process module decides on Envoy's worker thread with a context that
// must not wait for a key fetch; when a fetch is needed it drops that attempt unrecorded
// and decides again off the thread with Decide, so each request is recorded once. The
// decision started at start and ends now (one clock read, as in Decide).
func (s *Server) Record(ctx context.Context, front Front, out *Outcome, start time.Time) {
	out.Front = front
	s.recordSince(ctx, out.Decision, start)
}

// recordSince records a decision that started at start and ends now; the one clock read
// gives both the duration and the log line's time.
func (s *Server) recordSince(ctx context.Context, d Decision, start time.Time) {
	end := time.Now()
	s.record(ctx, d, end, end.Sub(start))
}

// record observes and logs one decision made at time at, and ends its span.
func (s *Server) record(ctx context.Context, d Decision, at time.Time, elapsed time.Duration) {
	if s.observe != nil {
		s.observe(d, elapsed)
	}
	s.logDecision(ctx, d, at, elapsed)
	if s.tracing.Tracer != nil {
		endSpan(ctx, d)
	}
}
