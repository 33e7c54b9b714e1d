package extauthz

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// The gRPC face of the Server. grpc-go's generated handler would decode every
// CheckRequest into messages (a map and a string per header, about a third of a cached
// Check's CPU) and encode a CheckResponse built from messages. Register instead hands the
// request bytes to AppendCheck, which reads only what the decision needs, and sends the
// bytes it appends. The wire format is unchanged: Envoy, grpcurl and any other client
// see the same service.

// Register serves s on gs as envoy.service.auth.v3.Authorization. gs must have been
// created with the Codec server option, or every call fails to decode.
func (s *Server) Register(gs *grpc.Server) {
	gs.RegisterService(&authorizationService, s)
}

// CodecOption is the grpc.ServerOption Register needs: grpc-go's protobuf codec, except
// that a request for Register's Check is kept as bytes and its answer is sent as bytes.
// Every other service (health, reflection) is served by the protobuf codec unchanged.
func CodecOption() grpc.ServerOption { return grpc.ForceServerCodecV2(codec{}) }

var authorizationService = grpc.ServiceDesc{
	ServiceName: "envoy.service.auth.v3.Authorization",
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Metadata:    "envoy/service/auth/v3/external_auth.proto",
}

// wireMessage is a CheckRequest or CheckResponse in its serialized form.
type wireMessage struct{ b []byte }

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wireMessage)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.answer(ctx, in), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.answer(ctx, req.(*wireMessage)), nil
	})
}

// answer is the serialized CheckResponse to a serialized CheckRequest.
func (s *Server) answer(ctx context.Context, in *wireMessage) *wireMessage {
	// 512 bytes hold a typical answer: the status, a few headers, the metadata.
	return &wireMessage{b: s.AppendCheck(make([]byte, 0, 512), ctx, in.b)}
}

type codec struct{}

var protoCodec = encoding.GetCodecV2(protocodec.Name)

func (codec) Name() string { return protocodec.Name }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*wireMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return protoCodec.Marshal(v)
}

// Unmarshal copies a request for Check: gRPC reuses its receive buffers once Unmarshal
// returns, and the request's strings point into these bytes.
func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*wireMessage); ok {
		m.b = data.Materialize()
		return nil
	}
	return protoCodec.Unmarshal(data, v)
}
