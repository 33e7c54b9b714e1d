package main

import (
	"google.golang.org/grpc"

	"github.com/jwt-authz/jwt-authz/config"
)

// maxHeaderListSize bounds the HTTP/2 header block of one gRPC call (grpc-go's default is
// 16 MiB). Envoy sends the checked request's headers inside the CheckRequest message, not
// as gRPC metadata: its own call carries a few hundred bytes of headers, plus any
// initial_metadata the operator configures.
const maxHeaderListSize = 16 << 10

// connectionLimits bound what one client connection can make the server hold: at most
// grpc_max_concurrent_streams calls at once (further streams are refused with
// REFUSED_STREAM; with the limit in place grpc-go also stops reading a connection whose
// reset streams' handlers are still running, its defence against HTTP/2 rapid reset,
// CVE-2023-44487), each with a bounded header block.
func connectionLimits(cfg *config.Config) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(uint32(cfg.GRPCMaxConcurrentStreams)),
		grpc.MaxHeaderListSize(maxHeaderListSize),
	}
}
