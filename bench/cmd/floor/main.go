// Command floor is a reference ext_authz v3 gRPC server that does as little as a server can,
// so the benchmarks can tell what jwt-authz adds on top of it. It has two modes:
//
//	floor -mode noop                    Check returns OK without looking: the gRPC transport floor
//	floor -mode rs256 -pubkey rsa.pub.pem
//	                                    Check verifies the bearer token's RS256 signature with
//	                                    the standard library and nothing else: the floor for a
//	                                    verification that is not cached
//
// It listens on -addr (default 127.0.0.1:0) and prints "listening ADDR" on stdout once it
// accepts connections; it answers gRPC health checks as SERVING. It is not an authorization server: rs256 checks no claim at all.
package main

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // only served with -pprof
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	mode := fs.String("mode", "noop", "noop or rs256")
	pubkey := fs.String("pubkey", "", "PEM RSA public key (rs256 mode)")
	pprof := fs.Bool("pprof", false, `serve net/http/pprof on another 127.0.0.1 port, printed as "pprof listening on ADDR"`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var srv authv3.AuthorizationServer
	switch *mode {
	case "noop":
		srv = noop{}
	case "rs256":
		k, err := readRSAPublicKey(*pubkey)
		if err != nil {
			return err
		}
		srv = &rs256{key: k}
	default:
		return fmt.Errorf("-mode %q: want noop or rs256", *mode)
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if *pprof {
		pl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pprof listening on %s\n", pl.Addr())
		go http.Serve(pl, nil) // http.DefaultServeMux, where net/http/pprof registers
	}
	// The same server options as jwt-authz, so the transports compare like for like.
	gs := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(4<<20),
	)
	authv3.RegisterAuthorizationServer(gs, srv)
	// Serving at once, under the names Envoy's health checks use for jwt-authz, so an Envoy
	// cluster can point at either server with the same config.
	hs := health.NewServer()
	hs.SetServingStatus("envoy.service.auth.v3.Authorization", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go func() {
		<-ctx.Done()
		gs.Stop()
	}()
	fmt.Fprintf(stdout, "listening %s\n", lis.Addr())
	if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

var (
	okResponse     = &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}}
	deniedResponse = &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.Unauthenticated)}}
)

// noop allows everything without reading the request (gRPC has already decoded it).
type noop struct {
	authv3.UnimplementedAuthorizationServer
}

func (noop) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return okResponse, nil
}

// rs256 allows a request whose bearer token carries a valid RS256 signature by key.
type rs256 struct {
	authv3.UnimplementedAuthorizationServer
	key *rsa.PublicKey
}

func (s *rs256) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if verifyRS256(s.key, bearer(req)) {
		return okResponse, nil
	}
	return deniedResponse, nil
}

// bearer returns the credential of the Authorization header, from whichever of Envoy's two
// header encodings the request uses.
func bearer(req *authv3.CheckRequest) string {
	h := req.GetAttributes().GetRequest().GetHttp()
	v, ok := h.GetHeaders()["authorization"]
	if !ok {
		for _, hv := range h.GetHeaderMap().GetHeaders() {
			if hv.GetKey() == "authorization" {
				v = string(hv.GetRawValue())
				break
			}
		}
	}
	tok, _ := strings.CutPrefix(v, "Bearer ")
	return tok
}

// verifyRS256 checks the signature of a compact JWS and nothing else: split, decode the
// signature, hash the signing input, verify.
func verifyRS256(key *rsa.PublicKey, tok string) bool {
	dot := strings.LastIndexByte(tok, '.')
	if dot < 0 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		return false
	}
	digest := sha256.Sum256([]byte(tok[:dot]))
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) == nil
}

func readRSAPublicKey(path string) (*rsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA public key", path)
	}
	return rk, nil
}
