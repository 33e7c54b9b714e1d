package main

import (
	"errors"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// checkRequest is a CheckRequest shaped like the ones Envoy 1.40 sends for a plain HTTP/1.1
// GET through its ext_authz filter in gRPC mode (envoy-extauthz.md §1): pseudo-headers in the
// header map, the query inside path, the stream id as http.id.
func checkRequest(token, path string, i int) *authv3.CheckRequest {
	sock := func(port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	requestID := fmt.Sprintf("6f1c2b1e-0d3a-4d5e-9b7a-%012d", i)
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: sock(40000 + uint32(i%20000))},
		Destination: &authv3.AttributeContext_Peer{Address: sock(8000)},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:     fmt.Sprint(1_000_000_007 * uint64(i+1)),
				Method: "GET",
				Headers: map[string]string{
					":authority":        "api.bench.example",
					":method":           "GET",
					":path":             path,
					":scheme":           "http",
					"accept":            "*/*",
					"authorization":     "Bearer " + token,
					"user-agent":        "authz-load",
					"x-forwarded-proto": "http",
					"x-request-id":      requestID,
				},
				Path:     path,
				Host:     "api.bench.example",
				Scheme:   "http",
				Protocol: "HTTP/1.1",
			},
		},
	}}
}

// encodeRequests marshals one CheckRequest per token, ahead of the run, so the load
// generator spends its core on sending rather than on protobuf.
func encodeRequests(tokens []string, path string) ([][]byte, error) {
	out := make([][]byte, len(tokens))
	for i, t := range tokens {
		b, err := proto.Marshal(checkRequest(t, path, i))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// errDenied: the server answered, but not with an allow. Benchmarks only send valid tokens,
// so a denial means the run measured the wrong path.
var errDenied = errors.New("check denied")

// allowed reads google.rpc.Status.code out of a marshalled CheckResponse (field 1, status;
// inside it field 1, code) without decoding the rest. A missing status counts as an allow,
// as Envoy counts it (envoy-extauthz.md §2).
func allowed(resp []byte) error {
	st, ok := field(resp, 1)
	if !ok {
		return nil
	}
	code, ok := field(st, 1)
	if !ok {
		return nil // code 0 is not encoded
	}
	if v, n := protowire.ConsumeVarint(code); n < 0 || v != 0 {
		return fmt.Errorf("%w: status code %d", errDenied, v)
	}
	return nil
}

// field returns the raw value of the first occurrence of field num in a marshalled message:
// the bytes of a length-delimited field, the varint bytes of a varint field.
func field(msg []byte, num protowire.Number) ([]byte, bool) {
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return nil, false
		}
		msg = msg[l:]
		vl := protowire.ConsumeFieldValue(n, typ, msg)
		if vl < 0 {
			return nil, false
		}
		if n == num {
			switch typ {
			case protowire.BytesType:
				v, _ := protowire.ConsumeBytes(msg)
				return v, true
			case protowire.VarintType:
				return msg[:vl], true
			}
		}
		msg = msg[vl:]
	}
	return nil, false
}
