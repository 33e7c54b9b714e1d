package extauthz

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// request is the read-only view of a CheckRequest that the decision needs. It reads the
// header_map when Envoy sends one (encode_raw_headers: true) and the headers map otherwise,
// so no other code has to know which encoding arrived (envoy-extauthz.md §1, §6.6).
type request struct {
	method    string
	host      string // lower-case, without port
	path      string // without the query, as sent
	matchPath string // path normalised for rule matching
	query     string // raw query, without '?'

	headers   map[string]string     // headers encoding; nil when raw is used
	raw       []*corev3.HeaderValue // header_map encoding
	usesRaw   bool
	contextEx map[string]string

	sourcePrincipal      string
	destinationPrincipal string
}

// newRequest builds the view. http may be nil (a TCP check from Istio); the caller handles that.
func newRequest(attrs *authv3.AttributeContext) *request {
	r := &request{
		contextEx:            attrs.GetContextExtensions(),
		sourcePrincipal:      attrs.GetSource().GetPrincipal(),
		destinationPrincipal: attrs.GetDestination().GetPrincipal(),
	}
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return r
	}
	if hm := h.GetHeaderMap(); hm != nil {
		r.raw, r.usesRaw = hm.GetHeaders(), true
	} else {
		r.headers = h.GetHeaders()
	}
	r.method = h.GetMethod()
	if r.method == "" {
		r.method, _ = r.header(":method")
	}
	host := h.GetHost()
	if host == "" {
		if host, _ = r.header(":authority"); host == "" {
			host, _ = r.header("host")
		}
	}
	// A fully qualified "api.example.com." names the same host as "api.example.com" (and
	// upstreams such as nginx treat it so); without the trim it would skip host rules.
	r.host = strings.TrimSuffix(hostWithoutPort(strings.ToLower(host)), ".")
	p := h.GetPath()
	if p == "" {
		p, _ = r.header(":path")
	}
	r.path, r.query, _ = strings.Cut(p, "?")
	if i := strings.IndexByte(r.path, '#'); i >= 0 {
		r.path = r.path[:i]
	}
	if h.GetQuery() != "" && r.query == "" { // never filled by Envoy, but a direct caller may
		r.query = h.GetQuery()
	}
	r.matchPath = normalizePath(r.path)
	return r
}

// header returns the first value of the named header (name in lower case) and how many
// entries carry that name. In the headers encoding Envoy has already joined repeated headers
// with "," so n is at most 1 there; callers that care look for the comma.
func (r *request) header(name string) (value string, n int) {
	if !r.usesRaw {
		v, ok := r.headers[name]
		if !ok {
			return "", 0
		}
		return v, 1
	}
	for _, hv := range r.raw {
		if !strings.EqualFold(hv.GetKey(), name) {
			continue
		}
		if n == 0 {
			value = headerValue(hv)
		}
		n++
	}
	return value, n
}

// headerValues calls fn for every value of the named header, stopping when fn returns false.
func (r *request) headerValues(name string, fn func(string) bool) {
	if !r.usesRaw {
		if v, ok := r.headers[name]; ok {
			fn(v)
		}
		return
	}
	for _, hv := range r.raw {
		if strings.EqualFold(hv.GetKey(), name) && !fn(headerValue(hv)) {
			return
		}
	}
}

// requestID is x-request-id for log correlation (http.id is Envoy's stream id, not this).
func (r *request) requestID() string {
	v, _ := r.header("x-request-id")
	if len(v) > 128 {
		v = v[:128]
	}
	return v
}

func headerValue(hv *corev3.HeaderValue) string {
	if rv := hv.GetRawValue(); len(rv) > 0 {
		return string(rv)
	}
	return hv.GetValue()
}

func hostWithoutPort(h string) string {
	if strings.HasPrefix(h, "[") { // IPv6 literal
		if i := strings.IndexByte(h, ']'); i >= 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}
