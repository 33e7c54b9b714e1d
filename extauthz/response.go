package extauthz

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// appendAllow appends an allow: the identity's headers, the removal of every other header
// the server could inject (and of the credential when the provider does not forward it),
// and the decision in dynamic metadata.
func (p *Policy) appendAllow(b []byte, r *request, o outcome, d Decision) []byte {
	b = append(b, wireStatusOK...)
	id := o.token
	if id == nil { // public, anonymous, default and non-HTTP allows set nothing
		b = appendMessageHeader(b, fieldRespOK, len(p.removeAllWire))
		b = append(b, p.removeAllWire...)
		return p.appendMetadata(b, o, d)
	}
	pr := id.provider
	// Envoy applies headers_to_remove after headers (ext_authz.cc onComplete), so a header
	// we set must not be listed; every other injectable one is.
	removal := pr.removal(p, id.setMask)
	var cookie []byte // the client's cookies without the credential, when it came in one
	credential := ""  // headers_to_remove or query_parameters_to_remove for the credential
	if !pr.forwardToken {
		credential = o.source.removeWire
		if o.source.kind == fromCookie {
			if kept := cookiesWithout(r, o.source.name); kept != "" {
				cookie, credential = appendUpstreamHeader(nil, "cookie", kept), ""
			} else {
				credential = wireRemoveCookie
			}
		}
	}
	b = appendMessageHeader(b, fieldRespOK, len(id.headerWire)+len(cookie)+len(credential)+len(removal))
	b = append(b, id.headerWire...)
	b = append(b, cookie...)
	b = append(b, credential...)
	b = append(b, removal...)
	return p.appendMetadata(b, o, d)
}

// removal is the encoded headers_to_remove for an allow that sets the claim headers in
// mask (and the payload header, which is always set when configured): every injectable
// header but those. Built once per mask.
func (pr *provider) removal(p *Policy, mask uint64) []byte {
	if mask == pr.allSet {
		return pr.removeWhenAllSet
	}
	if w, ok := pr.removals.Load(mask); ok {
		return w.([]byte)
	}
	w, _ := pr.removals.LoadOrStore(mask, removalList(p.removeExcept(pr.headersIn(mask))))
	return w.([]byte)
}

// headersIn names the headers an identity with mask sets.
func (pr *provider) headersIn(mask uint64) []string {
	var set []string
	if pr.payloadHeader != "" {
		set = append(set, pr.payloadHeader)
	}
	for i, ch := range pr.claimHeaders {
		if mask&(1<<i) != 0 {
			set = append(set, ch.header)
		}
	}
	return set
}

// sets reports whether an identity with mask sets header h (as headersIn names them).
func (pr *provider) sets(mask uint64, h string) bool {
	if pr.payloadHeader != "" && pr.payloadHeader == h {
		return true
	}
	for i, ch := range pr.claimHeaders {
		if mask&(1<<i) != 0 && ch.header == h {
			return true
		}
	}
	return false
}

// removeExcept is every injectable header but those in set.
func (p *Policy) removeExcept(set []string) []string {
	var out []string
	for _, h := range p.injectable {
		if !slices.Contains(set, h) {
			out = append(out, h)
		}
	}
	return out
}

// cookiesWithout is the request's cookies without the named one, joined for one cookie
// header; "" when no other cookie is left.
func cookiesWithout(r *request, name string) string {
	var kept []string
	r.headerValues("cookie", func(h string) bool {
		for pair := range strings.SplitSeq(h, ";") {
			pair = strings.TrimSpace(pair)
			if k, _, _ := strings.Cut(pair, "="); pair != "" && k != name {
				kept = append(kept, pair)
			}
		}
		return true
	})
	return strings.Join(kept, "; ")
}

// Metadata entries prepared once.
var (
	wireShadowAllow   = metadataEntry("shadow_decision", "allow")
	wireShadowDeny    = metadataEntry("shadow_decision", "deny")
	wireShadowReasons = func() map[Reason][]byte {
		m := make(map[Reason][]byte, len(Reasons))
		for _, r := range Reasons {
			m[r] = metadataEntry("shadow_reason", string(r))
		}
		return m
	}()
	wireDecisionAllow = metadataEntry("decision", "allow")
	wireDecisionDeny  = metadataEntry("decision", "deny")
	wireReasons       = func() map[Reason][]byte {
		m := make(map[Reason][]byte, len(Reasons))
		for _, r := range Reasons {
			m[r] = metadataEntry("reason", string(r))
		}
		return m
	}()
	wireRemoveCookie = string(appendString(nil, fieldOKHeadersToRemove, "cookie"))
)

// appendDeny appends a denial: a non-zero status always (a nil status would allow, §6.1)
// and an explicit HTTP status, RFC 6750 challenge and JSON body. These depend only on the
// denial, whose fields come from closed sets (config and fixed texts), so each kind is
// encoded once and then reused.
func (p *Policy) appendDeny(b []byte, dn denial, o outcome, d Decision) []byte {
	if dn.nonce != "" { // a DPoP-Nonce changes every window: encoded each time, never kept
		b = append(b, buildDenial(dn)...)
		return p.appendMetadata(b, o, d)
	}
	pd, ok := p.denials.Load(dn)
	if !ok {
		pd, _ = p.denials.LoadOrStore(dn, buildDenial(dn))
	}
	b = append(b, pd.([]byte)...)
	return p.appendMetadata(b, o, d)
}

// buildDenial encodes CheckResponse.status and denied_response for dn.
func buildDenial(dn denial) []byte {
	grpcCode := code.Code_UNAUTHENTICATED
	switch dn.httpStatus {
	case http.StatusForbidden:
		grpcCode = code.Code_PERMISSION_DENIED
	case http.StatusServiceUnavailable:
		grpcCode = code.Code_UNAVAILABLE
	case http.StatusInternalServerError:
		grpcCode = code.Code_INTERNAL
	case http.StatusBadRequest:
		grpcCode = code.Code_INVALID_ARGUMENT
	}
	var headers []*corev3.HeaderValueOption
	for _, h := range denialHeaders(dn) {
		// append left unset: Envoy drops denied headers with append=true (§2).
		headers = append(headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.Name, Value: h.Value}})
	}
	body := denialBody(dn)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode), Message: string(dn.reason)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(dn.httpStatus)},
			Headers: headers,
			Body:    string(body),
		}},
	})
	if err != nil { // only for invalid UTF-8, which config validation and fixed texts exclude
		panic("extauthz: encoding a denial: " + err.Error())
	}
	return b
}

// denialHeaders are the headers of the HTTP answer to a denial, for every face.
func denialHeaders(dn denial) []Header {
	h := []Header{{"content-type", "application/json"}, {"cache-control", "no-store"}}
	if dn.challenge {
		h = append(h, Header{"www-authenticate", challenge(dn)})
	}
	if dn.httpStatus == http.StatusServiceUnavailable {
		h = append(h, Header{"retry-after", "5"})
	}
	if dn.nonce != "" {
		h = append(h, Header{"dpop-nonce", dn.nonce})
	}
	return h
}

// denialBody is the JSON body of the HTTP answer to a denial, for every face.
func denialBody(dn denial) []byte {
	errCode := dn.code
	if errCode == "" {
		errCode = "unauthorized"
	}
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Reason      Reason `json:"reason"`
		Rule        string `json:"rule,omitempty"`
	}{errCode, dn.desc, dn.reason, dn.rule})
	return body
}

// challenge formats WWW-Authenticate per RFC 6750 §3, and RFC 9449 §7.1 for DPoP: a
// provider that takes DPoP adds a DPoP challenge with its algs; one that requires it, or a
// DPoP failure, gets the DPoP challenge alone, carrying the error.
func challenge(dn denial) string {
	var b strings.Builder
	scheme := "Bearer"
	if dn.dpopOnly {
		scheme = "DPoP"
	}
	b.WriteString(scheme + ` realm="`)
	b.WriteString(quoteSafe(dn.realm))
	b.WriteByte('"')
	if dn.code != "" {
		b.WriteString(`, error="` + dn.code + `"`)
		if dn.desc != "" {
			b.WriteString(`, error_description="` + quoteSafe(dn.desc) + `"`)
		}
	}
	if dn.scope != "" {
		b.WriteString(`, scope="` + quoteSafe(dn.scope) + `"`)
	}
	if dn.resourceMetadata != "" {
		b.WriteString(`, resource_metadata="` + quoteSafe(dn.resourceMetadata) + `"`)
	}
	switch {
	case dn.dpopOnly:
		b.WriteString(`, algs="` + dn.dpopAlgs + `"`)
	case dn.dpopAlgs != "":
		b.WriteString(`, DPoP realm="` + quoteSafe(dn.realm) + `", algs="` + dn.dpopAlgs + `"`)
	}
	return b.String()
}

// quoteSafe keeps a quoted-string (RFC 9110 §5.6.4) well formed.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// appendMetadata appends the dynamic metadata Envoy stores under
// envoy.filters.http.ext_authz, for allow and deny alike, so access logs can say why.
// Every entry but sub is prepared. None with dynamic_metadata.enabled false.
func (p *Policy) appendMetadata(b []byte, o outcome, d Decision) []byte {
	if p.noMetadata {
		return b
	}
	decision := wireDecisionDeny
	if d.Allowed {
		decision = wireDecisionAllow
	}
	reason := wireReasons[d.Reason]
	if reason == nil {
		reason = metadataEntry("reason", string(d.Reason))
	}
	var rule, provider, iss []byte
	sub := 0
	if o.rule != nil {
		rule = o.rule.metadata
	}
	if o.provider != nil {
		provider = o.provider.metadata
	}
	if o.token != nil {
		iss = o.token.provider.issuerMetadata
		if o.token.iss() != o.token.provider.issuer {
			iss = metadataEntry("iss", o.token.iss())
		}
		if d.Subject != "" {
			sub = sizeMetadataEntry("sub", d.Subject)
		}
	}
	// A shadow rule's or shadow policy's would-be decision, so Envoy's access log can show
	// what enforcing would have answered (%DYNAMIC_METADATA(...:shadow_decision)%).
	var shDecision, shReason, shRule []byte
	if sh := o.shadow; sh != nil {
		shDecision, shReason = wireShadowDeny, wireShadowReasons[sh.reason]
		if sh.allow {
			shDecision = wireShadowAllow
		}
		if sh.rule != nil {
			shRule = sh.rule.shadowMetadata
		}
	}
	shadow := len(shDecision) + len(shReason) + len(shRule)
	b = appendMessageHeader(b, fieldRespMetadata, len(decision)+len(reason)+len(rule)+len(provider)+len(iss)+sub+shadow)
	if shadow > 0 {
		b = append(b, shDecision...)
		b = append(b, shReason...)
		b = append(b, shRule...)
	}
	b = append(b, decision...)
	b = append(b, reason...)
	b = append(b, rule...)
	b = append(b, provider...)
	b = append(b, iss...)
	if sub > 0 {
		b = appendMetadataEntry(b, "sub", d.Subject)
	}
	return b
}
