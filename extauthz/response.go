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
	ok := &authv3.OkHttpResponse{}
	var set []string
	if id := o.token; id != nil {
		pr := id.provider
		for i, ch := range pr.claimHeaders {
			if v := id.headers[i]; v != noHeader {
				ok.Headers = append(ok.Headers, overwrite(ch.header, v))
				set = append(set, ch.header)
			}
		}
		if pr.payloadHeader != "" {
			ok.Headers = append(ok.Headers, overwrite(pr.payloadHeader, id.payload))
			set = append(set, pr.payloadHeader)
		}
		if !pr.forwardToken {
			stripCredential(ok, r, o.source)
		}
	}
	// Envoy applies headers_to_remove after headers (ext_authz.cc onComplete), so a header
	// we set must not be listed; every other injectable one is.
	for _, h := range p.injectable {
		if !slices.Contains(set, h) {
			ok.HeadersToRemove = append(ok.HeadersToRemove, h)
		}
	}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(code.Code_OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: metadata(d),
	}
}

// stripCredential keeps the token from reaching the upstream.
func stripCredential(ok *authv3.OkHttpResponse, r *request, src tokenSource) {
	switch src.kind {
	case fromHeader:
		ok.HeadersToRemove = append(ok.HeadersToRemove, src.name)
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
			ok.HeadersToRemove = append(ok.HeadersToRemove, "cookie")
		} else {
			ok.Headers = append(ok.Headers, overwrite("cookie", strings.Join(kept, "; ")))
		}
	}
}

// overwrite builds an upstream header that replaces any client copy on every Envoy from 1.36
// to 1.40: append=false explicitly plus OVERWRITE_IF_EXISTS_OR_ADD (envoy-extauthz.md §2.1).
func overwrite(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		Append:       wrapperspb.Bool(false),
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// denyResponse: a non-zero status always (a nil status would allow, §6.1) and an explicit
// HTTP status, RFC 6750 challenge and JSON body.
func denyResponse(dn denial, d Decision) *authv3.CheckResponse {
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
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode), Message: string(dn.reason)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(dn.httpStatus)},
			Headers: headers,
			Body:    string(body),
		}},
		DynamicMetadata: metadata(d),
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
// allow and deny alike, so access logs can say why.
func metadata(d Decision) *structpb.Struct {
	decision := "deny"
	if d.Allowed {
		decision = "allow"
	}
	fields := map[string]*structpb.Value{
		"decision": structpb.NewStringValue(decision),
		"reason":   structpb.NewStringValue(string(d.Reason)),
	}
	for k, v := range map[string]string{"rule": d.Rule, "provider": d.Provider, "iss": d.Issuer, "sub": d.Subject} {
		if v != "" {
			fields[k] = structpb.NewStringValue(v)
		}
	}
	return &structpb.Struct{Fields: fields}
}
