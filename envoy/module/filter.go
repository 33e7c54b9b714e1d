package main

import (
	"context"
	"errors"
	"runtime/cgo"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/extauthz"
	"github.com/jwt-authz/jwt-authz/introspect"
	"github.com/jwt-authz/jwt-authz/keys"
)

// metadataNamespace is where the decision goes in the stream's dynamic metadata, for the
// access log: %DYNAMIC_METADATA(jwt_authz:reason)%.
const metadataNamespace = "jwt_authz"

// filter is one HTTP stream's state. Envoy calls its hooks on the stream's worker thread;
// a deferred decision finishes on a goroutine and comes back through the scheduler.
type filter struct {
	m     *module
	envoy uintptr // Envoy's filter pointer: valid until the destroy hook

	// A filter serves one request-headers hook and is then reused (idle), unless its
	// decision went off the worker thread (offThread): its goroutine may still hold it, and
	// the stream keeps its handle (stream.h) for the scheduled and destroy hooks. req,
	// attempt and ctx (which carries &attempt) are the inline decision's, kept here so that a
	// cached allow allocates none of them.
	handle    cgo.Handle // set when the decision goes off the thread
	offThread bool
	req       extauthz.Request
	headers   []extauthz.Header // backs req.Headers
	// headersRead is set when Envoy handed over the request's headers (a request always
	// has some: :method, :path): only then may a header the list lacks go unremoved.
	headersRead bool
	attempt     inlineAttempt
	ctx         context.Context
	metadata    metadataEntries // the decision's metadata, as handed to Envoy
	// peerDigest reads the TLS client certificate's digest from Envoy, for a bound token
	// (extauthz.Request.PeerCertificateDigest); made once per filter, not per request.
	peerDigest func() string

	mu        sync.Mutex
	scheduler uintptr           // set while a decision runs off the worker thread
	pending   *extauthz.Outcome // the off-thread decision, until the scheduled hook applies it
	destroyed bool
}

// inlineAttempt marks a decision made on Envoy's worker thread: key lookups in it must not
// wait for a fetch. wait records that one would have had to.
type inlineAttempt struct{ wait bool }

type inlineKey struct{}

// done is a context that is already over: a Set's Lookup given it still starts (or joins)
// the unknown-kid refetch, which lives on the Set, but returns at once instead of waiting.
var done = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// noWaitKeys is a provider's key set as the module's decisions see it: the same Set,
// except that a lookup on the worker thread never blocks on the network.
type noWaitKeys struct{ *keys.Set }

func (k noWaitKeys) Lookup(ctx context.Context, kid string) (*jose.JSONWebKey, bool, error) {
	a, inline := ctx.Value(inlineKey{}).(*inlineAttempt)
	if !inline {
		return k.Set.Lookup(ctx, kid)
	}
	key, found, err := k.Set.Lookup(done, kid)
	if err != nil && errors.Is(err, context.Canceled) {
		a.wait = true
	}
	return key, found, err
}

// noWaitIntrospector is a provider's introspection client as the module's decisions see it:
// on the worker thread only a cached answer; an opaque token not yet asked about sends the
// decision off the thread (like an unknown kid), where the endpoint is called.
type noWaitIntrospector struct{ *introspect.Client }

// errMustWait is the worker thread's answer for an opaque token the cache does not hold;
// the decision it ends is discarded and made again off the thread.
var errMustWait = errors.New("introspection needs a call to the endpoint")

func (n noWaitIntrospector) Introspect(ctx context.Context, token string) (bool, []byte, error) {
	a, inline := ctx.Value(inlineKey{}).(*inlineAttempt)
	if !inline {
		return n.Client.Introspect(ctx, token)
	}
	if active, answer, ok := n.Client.Cached(token); ok {
		return active, answer, nil
	}
	a.wait = true
	return false, nil, errMustWait
}

// onRequestHeaders decides the request on the worker thread when no key fetch is needed
// (the common case: a cached token or a known kid). Otherwise it answers StopIteration and
// decides again on a goroutine, which waits for the refetch and hands the outcome back to
// the worker thread through the scheduler (onScheduled).
func (f *filter) onRequestHeaders() int {
	yieldIfDue()
	req := &f.req
	f.headers = requestHeaders(f.headers, f.envoy)
	f.headersRead = len(f.headers) > 0
	requestView(req, f.headers)
	req.PeerCertificateDigest = f.peerDigest
	if testPanic != nil {
		testPanic(req)
	}
	f.attempt = inlineAttempt{}
	start := time.Now()
	out := f.m.srv.Policy().Decide(f.ctx, req, start)
	if !f.attempt.wait {
		f.m.srv.Record(f.ctx, extauthz.FrontModule, out, start)
		status := f.answer(out)
		out.Release()
		return status
	}
	out.Release()
	// The goroutine must not call into Envoy: it gets the connection's certificate digest
	// read here, on the worker thread.
	digest := peerCertificateDigest(f.envoy)
	req.PeerCertificateDigest = func() string { return digest }
	f.mu.Lock()
	f.offThread = true
	f.handle = cgo.NewHandle(f)
	f.scheduler = newScheduler(f.envoy)
	f.mu.Unlock()
	go f.decideOffThread(req)
	return statusStopIteration
}

// testPanic is nil in every library but the one TestModulePanic builds with the tag
// jwtauthz_paniccheck (paniccheck.go), where it panics on a marked request.
var testPanic func(*extauthz.Request)

// decideOffThread runs on its own goroutine: never on Envoy's thread, never touching the
// stream except through the scheduler, which Envoy drops if the stream is gone by then.
func (f *filter) decideOffThread(req *extauthz.Request) {
	var out *extauthz.Outcome
	func() {
		defer recoverPanic("decide")
		ctx, cancel := context.WithTimeout(context.Background(), f.m.fetchWait)
		defer cancel()
		out = f.m.srv.Decide(ctx, extauthz.FrontModule, req)
	}()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.destroyed || f.scheduler == 0 {
		return
	}
	f.pending = out // nil after a panic: onScheduled answers 500
	commitScheduler(f.scheduler, 0)
}

// onScheduled applies the off-thread decision on the worker thread and resumes the stream.
func (f *filter) onScheduled() {
	f.mu.Lock()
	out, sched := f.pending, f.scheduler
	f.pending, f.scheduler = nil, 0
	f.mu.Unlock()
	if sched != 0 {
		deleteScheduler(sched)
	}
	if out == nil {
		internalError(f.envoy)
		return
	}
	status := f.answer(out)
	out.Release()
	if status == statusContinue {
		continueDecoding(f.envoy)
	}
}

// module is f's filter config, or nil for a nil f (a hook that failed before finding it).
func (f *filter) module() *module {
	if f == nil {
		return nil
	}
	return f.m
}

// onDestroy ends the stream of a filter whose decision went off the worker thread (the
// destroy hook); a decision still running is dropped.
func (f *filter) onDestroy() {
	f.mu.Lock()
	sched := f.scheduler
	f.destroyed, f.scheduler, f.pending = true, 0, nil
	f.mu.Unlock()
	if sched != 0 {
		deleteScheduler(sched)
	}
	f.release()
}

// idle holds filters whose requests were decided on the worker thread, for later ones: a
// new filter per request was allocation on Envoy's worker.
var idle struct {
	sync.Mutex
	filters []*filter
}

// maxIdle bounds idle: beyond it a filter is left to the collector.
const maxIdle = 4096

// takeFilter answers a filter for one request of m's, on Envoy's filter envoy.
func takeFilter(m *module, envoy uintptr) *filter {
	var f *filter
	idle.Lock()
	if n := len(idle.filters); n > 0 {
		f = idle.filters[n-1]
		idle.filters[n-1] = nil
		idle.filters = idle.filters[:n-1]
	}
	idle.Unlock()
	if f == nil {
		f = &filter{}
		f.ctx = context.WithValue(context.Background(), inlineKey{}, &f.attempt)
		f.peerDigest = func() string { return peerCertificateDigest(f.envoy) }
	}
	f.m, f.envoy = m, envoy
	return f
}

// release ends f's use: by its request once decided on the worker thread, or by its stream
// (the destroy hook) once its decision went off the thread. That one may still be held by
// its goroutine, so only its handle goes.
func (f *filter) release() {
	if f.offThread {
		f.handle.Delete()
		return
	}
	f.m, f.envoy, f.req, f.attempt, f.destroyed, f.headersRead = nil, 0, extauthz.Request{}, inlineAttempt{}, false, false
	clear(f.headers) // the list stays for the next request; this one's strings go
	idle.Lock()
	defer idle.Unlock()
	if len(idle.filters) < maxIdle {
		idle.filters = append(idle.filters, f)
	}
}

// answer applies an outcome: a denial is a local reply; an allow removes every header the
// module could inject (so a client's copy never reaches the upstream), the credential if
// its provider does not forward it, and sets the identity headers.
func (f *filter) answer(out *extauthz.Outcome) int {
	if out.DynamicMetadata() {
		f.setMetadata(out.Decision)
	}
	f.m.counts.add(out.Allowed, out.Reason)
	if !out.Allowed {
		headers, body := out.Denial()
		hs := make([][2]string, len(headers))
		for i, h := range headers {
			hs[i] = [2]string{h.Name, h.Value}
		}
		sendResponse(f.envoy, out.HTTPStatus, hs, body, "jwt_authz_"+string(out.Reason))
		return statusStopIteration
	}
	envoy := f.envoy
	out.EachRemove(func(name string) {
		// The headers were read from Envoy in this stream's request-headers hook and
		// nothing changes them while the filter holds the request, so a name the list
		// lacks needs no call into Envoy.
		if !f.headersRead || carries(f.req.Headers, name) {
			removeRequestHeader(envoy, name)
		}
	})
	var added [4]extauthz.Header
	n := 0
	out.EachUpstream(func(h extauthz.Header) {
		// A header neither the request nor this answer carries yet is added: Envoy's set
		// would first look for every value of it to remove. Any other is set (replaced).
		if f.headersRead && n < len(added) && !carries(f.req.Headers, h.Name) && !carries(added[:n], h.Name) {
			addRequestHeader(envoy, h.Name, h.Value)
			added[n] = h
			n++
		} else {
			setRequestHeader(envoy, h.Name, h.Value)
		}
	})
	return statusContinue
}

// carries reports whether headers has one named name (names compared as HTTP compares them).
func carries(headers []extauthz.Header, name string) bool {
	for _, h := range headers {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// setMetadata writes the decision where Envoy's access log can read it: the same words
// (and, when a shadow rule or policy reported, its would-be decision) under the same keys
// as the server's metadata, in namespace jwt_authz: %DYNAMIC_METADATA(jwt_authz:reason)%.
func (f *filter) setMetadata(d extauthz.Decision) {
	decision := "deny"
	if d.Allowed {
		decision = "allow"
	}
	var kvs [maxMetadata][2]string
	kvs[0], kvs[1] = [2]string{"decision", decision}, [2]string{"reason", string(d.Reason)}
	n := 2
	for _, kv := range [...][2]string{{"rule", d.Rule}, {"provider", d.Provider}, {"iss", d.Issuer}, {"sub", d.Subject},
		{"shadow_decision", d.ShadowDecision}, {"shadow_reason", string(d.ShadowReason)}, {"shadow_rule", d.ShadowRule}} {
		if kv[1] != "" {
			kvs[n] = kv
			n++
		}
	}
	setMetadataBatch(f.envoy, metadataNamespace, &f.metadata, &kvs, n)
}

// requestView turns Envoy's request headers into the decision's request view. HTTP/1 and
// HTTP/2 alike reach a filter with :method, :path and :authority as pseudo-headers; they
// are taken out of the header list in place.
func requestView(req *extauthz.Request, headers []extauthz.Header) {
	*req = extauthz.Request{}
	kept := headers[:0]
	for _, h := range headers {
		if !strings.HasPrefix(h.Name, ":") {
			kept = append(kept, h)
			continue
		}
		switch h.Name {
		case ":method":
			req.Method = h.Value
		case ":path":
			req.Path = h.Value
		case ":authority":
			req.Host = h.Value
		case ":scheme":
			req.Scheme = h.Value
		}
	}
	req.Headers = kept
}
