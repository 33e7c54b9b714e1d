package main

import (
	"errors"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

func TestAllowed(t *testing.T) {
	tests := []struct {
		name string
		resp *authv3.CheckResponse
		want error
	}{
		{"status OK", &authv3.CheckResponse{Status: &status.Status{Code: 0}}, nil},
		{"no status", &authv3.CheckResponse{}, nil},
		{"OK with an ok_response", &authv3.CheckResponse{Status: &status.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{HeadersToRemove: []string{"x"}}}}, nil},
		{"unauthenticated", &authv3.CheckResponse{Status: &status.Status{Code: 16, Message: "no"}}, errDenied},
		{"permission denied", &authv3.CheckResponse{Status: &status.Status{Code: 7}}, errDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := proto.Marshal(tt.resp)
			if err != nil {
				t.Fatal(err)
			}
			if got := allowed(b); !errors.Is(got, tt.want) {
				t.Errorf("allowed(%v) = %v, want %v", tt.resp, got, tt.want)
			}
		})
	}
}

func TestEncodeRequests(t *testing.T) {
	msgs, err := encodeRequests([]string{"a.b.c", "d.e.f"}, "/api/x?y=1")
	if err != nil {
		t.Fatalf("encodeRequests: %v", err)
	}
	var req authv3.CheckRequest
	if err := proto.Unmarshal(msgs[1], &req); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	if got, want := h.GetHeaders()["authorization"], "Bearer d.e.f"; got != want {
		t.Errorf("authorization = %q, want %q", got, want)
	}
	if got, want := h.GetHeaders()[":path"], "/api/x?y=1"; got != want || h.GetPath() != want {
		t.Errorf(":path = %q, path = %q, want %q", got, h.GetPath(), want)
	}
}
