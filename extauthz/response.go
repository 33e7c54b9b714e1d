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
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// allowResponse sets the identity headers, removes every other header the server could
// inject (and the credential when the provider does not forward it), and records the
// decision in dynamic metadata.
func (p *Policy) allowResponse(r *request, o outcome, d Decision) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{HeadersToRemove: p.injectable}
	if id := o.token; id != nil {
		pr := id.provider
		n := 0
		for _, v := range id.headers {
			if v != noHeader {
				n++
			}
		}
		allSet := n == len(pr.claimHeaders)
		if pr.payloadHeader != "" {
			n++
		}
		// One allocation for all header options (this is the hot path of every allow).
		block := make([]headerBlock, n)
		ok.Headers = make([]*corev3.HeaderValueOption, n)
		j := 0
		for i, ch := range pr.claimHeaders {
			if v := id.headers[i]; v != noHeader {
				ok.Headers[j] = block[j].option(ch.header, v)
				j++
			}
		}
		if pr.payloadHeader != "" {
			ok.Headers[j] = block[j].option(pr.payloadHeader, id.payload)
		}
		// Envoy applies headers_to_remove after headers (ext_authz.cc onComplete), so a
		// header we set must not be listed; every other injectable one is.
		if allSet {
			ok.HeadersToRemove = pr.removeWhenAllSet
		} else {
			set := make([]string, len(ok.Headers))
			for i, h := range ok.Headers {
				set[i] = h.Header.Key
			}
			ok.HeadersToRemove = p.removeExcept(set)
		}
		if !pr.forwardToken {
			if name := stripCredential(ok, r, o.source); name != "" {
				// A fresh slice: the prepared lists are shared by concurrent responses.
				ok.HeadersToRemove = append([]string{name}, ok.HeadersToRemove...)
			}
		}
	}
	return &authv3.CheckResponse{
		Status:          statusOK,
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: p.metadata(o, d),
	}
}

// removeExcept is every injectable header but those in set. The result is clipped, so an
// append to a shared copy can never write into it.
func (p *Policy) removeExcept(set []string) []string {
	out := make([]string, 0, len(p.injectable))
	for _, h := range p.injectable {
		if !slices.Contains(set, h) {
			out = append(out, h)
		}
	}
	return slices.Clip(out)
}

// headerBlock holds an upstream header option and its value, so a response's headers take
// one allocation.
type headerBlock struct {
	opt corev3.HeaderValueOption
	hv  corev3.HeaderValue
}

func (b *headerBlock) option(key, value string) *corev3.HeaderValueOption {
	b.hv.Key, b.hv.Value = key, value
	b.opt.Header = &b.hv
	b.opt.Append = appendFalse
	b.opt.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	return &b.opt
}

// stripCredential keeps the token from reaching the upstream. It returns the header to
// remove, if any; a query parameter or a cookie is dealt with in ok directly.
func stripCredential(ok *authv3.OkHttpResponse, r *request, src tokenSource) (removeHeader string) {
	switch src.kind {
	case fromHeader:
		return src.name
	case fromQuery:
		ok.QueryParametersToRemove = append(ok.QueryParametersToRemove, src.name)
	case fromCookie:
		var kept []string
		r.headerValues("cookie", func(h string) bool {
			for pair := range strings.SplitSeq(h, ";") {
				pair = strings.TrimSpace(pair)
				if k, _, _ := strings.Cut(pair, "="); pair != "" && k != src.name {
					kept = append(kept, pair)
				}
			}
			return true
		})
		if len(kept) == 0 {
			return "cookie"
		}
		ok.Headers = append(ok.Headers, overwrite("cookie", strings.Join(kept, "; ")))
	}
	return ""
}

// Prepared once and shared read-only by every response: protobuf messages are safe for
// concurrent marshalling as long as nobody mutates them.
var (
	statusOK    = &rpcstatus.Status{Code: int32(code.Code_OK)}
	appendFalse = wrapperspb.Bool(false)
	allowValue  = structpb.NewStringValue("allow")
	denyValue   = structpb.NewStringValue("deny")
	reasonValue = func() map[Reason]*structpb.Value {
		m := make(map[Reason]*structpb.Value, len(Reasons))
		for _, r := range Reasons {
			m[r] = structpb.NewStringValue(string(r))
		}
		return m
	}()
)

// overwrite builds an upstream header that replaces any client copy on every Envoy from 1.36
// to 1.40: append=false explicitly plus OVERWRITE_IF_EXISTS_OR_ADD (envoy-extauthz.md §2.1).
func overwrite(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		Append:       appendFalse,
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// denyResponse: a non-zero status always (a nil status would allow, §6.1) and an explicit
// HTTP status, RFC 6750 challenge and JSON body. The status and denied response depend only
// on the denial, whose fields come from closed sets (config and fixed texts), so each kind
// is built once and then shared.
func (p *Policy) denyResponse(dn denial, o outcome, d Decision) *authv3.CheckResponse {
	pd, ok := p.denials.Load(dn)
	if !ok {
		pd, _ = p.denials.LoadOrStore(dn, buildDenial(dn))
	}
	prep := pd.(*preparedDenial)
	return &authv3.CheckResponse{
		Status:          prep.status,
		HttpResponse:    prep.response,
		DynamicMetadata: p.metadata(o, d),
	}
}

// preparedDenial is the shareable part of a deny CheckResponse.
type preparedDenial struct {
	status   *rpcstatus.Status
	response *authv3.CheckResponse_DeniedResponse
}

func buildDenial(dn denial) *preparedDenial {
	grpcCode := code.Code_UNAUTHENTICATED
	switch dn.httpStatus {
	case http.StatusForbidden:
		grpcCode = code.Code_PERMISSION_DENIED
	case http.StatusServiceUnavailable:
		grpcCode = code.Code_UNAVAILABLE
	case http.StatusInternalServerError:
		grpcCode = code.Code_INTERNAL
	}
	errCode := dn.code
	if errCode == "" {
		errCode = "unauthorized"
	}
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Reason      Reason `json:"reason"`
	}{errCode, dn.desc, dn.reason})
	headers := []*corev3.HeaderValueOption{
		// append left unset: Envoy drops denied headers with append=true (§2).
		{Header: &corev3.HeaderValue{Key: "content-type", Value: "application/json"}},
		{Header: &corev3.HeaderValue{Key: "cache-control", Value: "no-store"}},
	}
	if dn.challenge {
		headers = append(headers, &corev3.HeaderValueOption{
			Header: &corev3.HeaderValue{Key: "www-authenticate", Value: challenge(dn)},
		})
	}
	if dn.httpStatus == http.StatusServiceUnavailable {
		headers = append(headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "retry-after", Value: "5"}})
	}
	return &preparedDenial{
		status: &rpcstatus.Status{Code: int32(grpcCode), Message: string(dn.reason)},
		response: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(dn.httpStatus)},
			Headers: headers,
			Body:    string(body),
		}},
	}
}

// challenge formats WWW-Authenticate per RFC 6750 §3.
func challenge(dn denial) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
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

// metadata is the dynamic metadata Envoy stores under envoy.filters.http.ext_authz, for
// allow and deny alike, so access logs can say why. Every value but sub is prepared.
func (p *Policy) metadata(o outcome, d Decision) *structpb.Struct {
	fields := make(map[string]*structpb.Value, 6)
	fields["decision"] = denyValue
	if d.Allowed {
		fields["decision"] = allowValue
	}
	if v := reasonValue[d.Reason]; v != nil {
		fields["reason"] = v
	} else {
		fields["reason"] = structpb.NewStringValue(string(d.Reason))
	}
	if o.rule != nil {
		fields["rule"] = o.rule.nameValue
	}
	if o.provider != nil {
		fields["provider"] = o.provider.nameValue
	}
	if o.token != nil {
		fields["iss"] = o.token.provider.issuerValue
		if d.Subject != "" {
			fields["sub"] = structpb.NewStringValue(d.Subject)
		}
	}
	return &structpb.Struct{Fields: fields}
}
