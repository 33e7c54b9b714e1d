// Package forwardauth is the HTTP face of the decision. A proxy asks over HTTP whether a
// request may pass (Envoy ext_authz http_service, nginx auth_request, Traefik forwardAuth,
// Caddy forward_auth) and gets 200 with the identity headers to copy upstream, or the
// denial (status, RFC 6750 challenge, JSON body) to relay to the client. The decision is
// extauthz's, the same one the gRPC face runs; this package only translates.
package forwardauth

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jwt-authz/jwt-authz/extauthz"
)

// The endpoints, one per way a proxy describes the original request.
const (
	// EnvoyPrefix is Envoy http_service's path_prefix: the check request is the original
	// request (method, path with query, authority, headers) with this prefix on its path.
	EnvoyPrefix = "/envoy"
	// OriginalPath is for nginx auth_request: X-Original-Method and X-Original-URI.
	OriginalPath = "/auth/original"
	// ForwardedPath is for Traefik forwardAuth and Caddy forward_auth: X-Forwarded-Method,
	// -Proto, -Host and -Uri.
	ForwardedPath = "/auth/forwarded"
)

// DenialHeader carries a denial's JSON body as a response header on OriginalPath: nginx
// relays only the status of an auth_request, so its config renders the body from this.
const DenialHeader = "X-Jwt-Authz-Denial"

// Handler serves the HTTP decision endpoints. It is safe for concurrent use.
type Handler struct {
	authz   *extauthz.Server
	trusted atomic.Pointer[[]netip.Prefix]
}

// New returns a Handler deciding with authz and believing forwarded request details only
// from peers in trusted.
func New(authz *extauthz.Server, trusted []netip.Prefix) *Handler {
	h := &Handler{authz: authz}
	h.SetTrustedProxies(trusted)
	return h
}

// SetTrustedProxies replaces the trusted proxies, for a config reload.
func (h *Handler) SetTrustedProxies(trusted []netip.Prefix) { h.trusted.Store(&trusted) }

// ServeHTTP answers one check. Every answer but a 404 for an unknown endpoint is a
// decision, logged and counted with its front.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The raw request target, not r.URL.Path: the decision normalises the path itself, the
	// same way for every face, and must see the dot segments and escapes the client sent.
	target := r.RequestURI
	var front extauthz.Front
	var req *extauthz.Request
	var refusal extauthz.Reason
	switch {
	case hasPathPrefix(target, EnvoyPrefix):
		front = extauthz.FrontEnvoyHTTP
		req = original(r, r.Method, r.Host, target[len(EnvoyPrefix):])
		if req.Path == "" {
			req.Path = "/"
		}
	case pathOf(target) == OriginalPath:
		front = extauthz.FrontAuthRequest
		req, refusal = h.forwarded(r, "X-Original-Method", "", "X-Original-Uri")
	case pathOf(target) == ForwardedPath:
		front = extauthz.FrontForwardAuth
		req, refusal = h.forwarded(r, "X-Forwarded-Method", "X-Forwarded-Host", "X-Forwarded-Uri")
	default:
		http.NotFound(w, r)
		return
	}
	var o *extauthz.Outcome
	if refusal != "" {
		o = h.authz.Refuse(r.Context(), front, refusal, r.Method, pathOf(target))
	} else {
		o = h.authz.Decide(r.Context(), front, req)
	}
	answer(w, front, o)
}

// hasPathPrefix: target is prefix or prefix followed by a path. "/envoyx" is not under
// "/envoy".
func hasPathPrefix(target, prefix string) bool {
	rest, ok := strings.CutPrefix(target, prefix)
	return ok && (rest == "" || rest[0] == '/' || rest[0] == '?')
}

func pathOf(target string) string {
	p, _, _ := strings.Cut(target, "?")
	return p
}

// forwarded reads the original request from the headers a trusted proxy set. hostHeader
// empty means the proxy sends the original Host as the check's own (nginx:
// proxy_set_header Host $host). A peer that is not trusted is refused whatever it sends:
// its headers would choose the rule, so they are never guessed at or half believed.
func (h *Handler) forwarded(r *http.Request, methodHeader, hostHeader, uriHeader string) (*extauthz.Request, extauthz.Reason) {
	if !h.trustedPeer(r.RemoteAddr) {
		return nil, extauthz.ReasonUntrustedProxy
	}
	method, ok1 := single(r.Header, methodHeader, false)
	uri, ok2 := single(r.Header, uriHeader, true) // a query may hold commas
	host, ok3 := r.Host, true
	if hostHeader != "" {
		host, ok3 = single(r.Header, hostHeader, false)
	}
	// Origin form only (RFC 9112 §3.2.1): an absolute URI would name a host of its own.
	if !ok1 || !ok2 || !ok3 || !validMethod(method) || !strings.HasPrefix(uri, "/") {
		return nil, extauthz.ReasonBadRequest
	}
	return original(r, method, host, uri), ""
}

// single is the one value of a header sent once; a repeated header, or a comma-joined one
// where a comma cannot be data, is ambiguous (two proxies, or a client's copy appended to)
// and refused.
func single(h http.Header, name string, commaIsData bool) (string, bool) {
	vs := h.Values(name)
	if len(vs) != 1 || vs[0] == "" || !commaIsData && strings.Contains(vs[0], ",") {
		return "", false
	}
	return vs[0], true
}

// validMethod: a token (RFC 9110 §9.1, §5.6.2).
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return m != ""
}

func (h *Handler) trustedPeer(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil { // a unix socket peer has no address to trust
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range *h.trusted.Load() {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// original is the request view: the check request's headers, which carry the client's
// credential and cookies, with the original method, host and target.
func original(r *http.Request, method, host, target string) *extauthz.Request {
	req := &extauthz.Request{Method: method, Host: host, Path: target}
	n := 0
	for _, vs := range r.Header {
		n += len(vs)
	}
	req.Headers = make([]extauthz.Header, 0, n)
	for name, vs := range r.Header {
		for _, v := range vs {
			req.Headers = append(req.Headers, extauthz.Header{Name: name, Value: v})
		}
	}
	return req
}

// answer writes the outcome. An allow is exactly 200, which every proxy here reads as
// allow; anything else denies. Envoy's http_service removes the request headers named in
// x-envoy-auth-headers-to-remove, which keeps a client's copy of an identity header from
// the upstream as the gRPC face's headers_to_remove does; the other proxies strip them by
// their own config (docs/front-doors.md).
func answer(w http.ResponseWriter, front extauthz.Front, o *extauthz.Outcome) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if o.Allowed {
		for _, u := range o.Upstream() {
			h.Add(u.Name, u.Value)
		}
		if rm := o.Remove(); front == extauthz.FrontEnvoyHTTP && len(rm) > 0 {
			h.Set("X-Envoy-Auth-Headers-To-Remove", strings.Join(rm, ", "))
		}
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	headers, body := o.Denial()
	for _, d := range headers {
		h.Set(d.Name, d.Value)
	}
	if front == extauthz.FrontAuthRequest {
		h.Set(DenialHeader, string(body))
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(o.HTTPStatus)
	w.Write(body)
}
