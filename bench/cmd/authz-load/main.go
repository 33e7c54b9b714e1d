// Command authz-load is a load generator for ext_authz v3 gRPC servers: it sends
// CheckRequests shaped like Envoy's, carrying one bearer token again and again (what a token
// cache sees) or cycling through a file of distinct tokens, at saturation (closed loop) or at
// a fixed rate (open loop), for a bounded time and count. It prints one JSON line (a
// load.Record) with the rate it sustained and the latency percentiles.
//
//	authz-load -addr 127.0.0.1:9001 -tokens rs256.tokens [-distinct] [-rate 5000] \
//	    [-workers 64 -conns 4] [-warmup 1s -duration 5s] [-n COUNT] \
//	    [-section grpc -name 'jwt-authz cached' -round 1] [-out results.jsonl]
//
// Every request must be allowed: a denial or an RPC error is counted as an error, and a run
// with errors makes authz-load exit 1 after printing its record. With -pid and -metrics it
// also records the server's resident memory and token-cache size after the run.
//
// The default client (-client h2) speaks just enough HTTP/2 to call Check (see h2.go) so that
// one core of load generator can saturate one core of server; -client grpc-go uses grpc-go
// for comparison.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"

	"github.com/jwt-authz/jwt-authz/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "authz-load:", err)
		os.Exit(1)
	}
}

// watchdogSlack bounds a run even if the server stops answering mid-call.
const watchdogSlack = 30 * time.Second

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("authz-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "server host:port")
	tokensPath := fs.String("tokens", "", "file of tokens, one per line")
	distinct := fs.Bool("distinct", false, "cycle through every token of the file (default: the first only)")
	path := fs.String("path", "/api/orders?limit=10", "request path in the CheckRequest")
	client := fs.String("client", "h2", "h2 (minimal HTTP/2, cheap) or grpc-go")
	conns := fs.Int("conns", 4, "HTTP/2 connections")
	workers := fs.Int("workers", 64, "concurrent requests (streams over the connections)")
	warmup := fs.Duration("warmup", time.Second, "unrecorded load before the measured window")
	duration := fs.Duration("duration", 5*time.Second, "measured window")
	rate := fs.Float64("rate", 0, "requests per second (open loop); 0 = saturation (closed loop)")
	count := fs.Uint64("n", 0, "stop the measured window after this many requests (0 = no limit)")
	section := fs.String("section", "grpc", "record label: section")
	name := fs.String("name", "", "record label: what was measured")
	round := fs.Int("round", 0, "record label: round")
	out := fs.String("out", "-", "append the JSON record to this file (- = stdout)")
	pid := fs.Int("pid", 0, "server process whose VmRSS/VmHWM to record after the run")
	metricsURL := fs.String("metrics", "", "jwt-authz /metrics URL whose cache and heap gauges to record after the run")
	serverPIDs := fs.String("server-pids", "", "comma-separated pids of the serving processes, to record their CPU use per request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *tokensPath == "" {
		return errors.New("-addr and -tokens are required")
	}
	tokens, err := load.ReadTokens(*tokensPath, *distinct)
	if err != nil {
		return err
	}
	msgs, err := encodeRequests(tokens, *path)
	if err != nil {
		return err
	}
	call, closeAll, err := newCaller(*client, *addr, *conns, *workers, msgs)
	if err != nil {
		return err
	}
	defer closeAll()

	pids, err := load.ParsePIDs(*serverPIDs)
	if err != nil {
		return err
	}
	opts := load.Options{Workers: *workers, Warmup: *warmup, Duration: *duration, Rate: *rate, MaxRequests: *count, ServerPIDs: pids}
	watchdog := time.AfterFunc(*warmup+*duration+watchdogSlack, func() {
		fmt.Fprintln(stderr, "authz-load: run did not end; the server stopped answering")
		os.Exit(2)
	})
	res, err := load.Run(ctx, opts, call)
	watchdog.Stop()
	if err != nil {
		return err
	}
	rec := load.Record{Section: *section, Name: *name, Round: *round, Tokens: len(tokens), Result: res}
	if *pid > 0 || *metricsURL != "" {
		if rec.Extra, err = memory(*pid, *metricsURL); err != nil {
			return err
		}
	}
	if err := load.Append(*out, stdout, rec); err != nil {
		return err
	}
	if res.Errors > 0 || res.Late > 0 {
		return fmt.Errorf("%s: %d errors, %d late (first: %s)", *name, res.Errors, res.Late, res.FirstError)
	}
	return nil
}

// newCaller connects and returns the per-request function: request seq carries token
// seq mod len(msgs).
func newCaller(client, addr string, nConns, workers int, msgs [][]byte) (load.Call, func(), error) {
	switch client {
	case "h2":
		framed := make([][]byte, len(msgs))
		for i, m := range msgs {
			framed[i] = frameMessage(m)
		}
		conns := make([]*h2Conn, nConns)
		closeAll := func() {
			for _, c := range conns {
				if c != nil {
					c.close()
				}
			}
		}
		for i := range conns {
			c, err := dialH2(addr, "authz")
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			conns[i] = c
		}
		calls := make([]*call, workers)
		for i := range calls {
			calls[i] = newCall()
		}
		return func(_ context.Context, w int, seq uint64) error {
			resp, err := conns[w%len(conns)].do(calls[w], framed[seq%uint64(len(framed))])
			if err != nil {
				return err
			}
			return allowed(resp)
		}, closeAll, nil

	case "grpc-go":
		conns := make([]*grpc.ClientConn, nConns)
		closeAll := func() {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
		}
		for i := range conns {
			c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			conns[i] = c
		}
		return func(ctx context.Context, w int, seq uint64) error {
			req := rawMessage(msgs[seq%uint64(len(msgs))])
			var resp rawMessage
			if err := conns[w%len(conns)].Invoke(ctx, checkMethod, &req, &resp); err != nil {
				return err
			}
			return allowed(resp)
		}, closeAll, nil
	}
	return nil, nil, fmt.Errorf("-client %q: want h2 or grpc-go", client)
}

// rawMessage is a marshalled protobuf message that rawCodec passes through untouched, so
// the grpc-go client does not pay for marshalling either.
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*rawMessage))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*rawMessage) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }
