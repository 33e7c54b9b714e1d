package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/extauthz"
	"github.com/jwt-authz/jwt-authz/forwardauth"
	"github.com/jwt-authz/jwt-authz/internal/gctune"
	"github.com/jwt-authz/jwt-authz/internal/linewriter"
)

// logFlushInterval bounds how long a log line waits in memory before it is written.
const logFlushInterval = 100 * time.Millisecond

// authzService is the gRPC health service name Envoy or Istio may probe besides "".
const authzService = "envoy.service.auth.v3.Authorization"

// app is one running server: listeners, the swappable policy and its key sets.
type app struct {
	log        *slog.Logger
	logOut     *linewriter.Writer // every log line, decisions included, goes through it
	tracing    *tracing
	configPath string
	metrics    *metrics
	authz      *extauthz.Server
	forward    *forwardauth.Handler // the HTTP decision face; nil when http_authz_address is unset
	health     *health.Server
	draining   atomic.Bool
	// serving is the readiness last published to gRPC health; /readyz reports the same
	// value so the two never disagree.
	serving atomic.Bool

	mu  sync.Mutex // serialises reloads
	cur atomic.Pointer[instance]
}

func serve(ctx context.Context, configPath string, cfg *config.Config, stderr io.Writer) error {
	hup, stopHangup := notifyHangup()
	defer stopHangup()
	// Log lines are batched (a write per decision cost more than a cached decision) and
	// written out on shutdown, on reload and every logFlushInterval.
	logOut := linewriter.New(stderr, logFlushInterval)
	defer logOut.Close()
	log, level := newLogger(logOut, cfg.Log.Level)
	if gc := gctune.Start(); gc != nil { // nil when the environment sets GOGC
		defer gc.Stop()
		log.Debug("garbage collector paced by heap size", "floor_bytes", gctune.Floor, "ratio", gctune.Ratio)
	}
	tr, err := newTracing(ctx, cfg.Tracing)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.shutdown(sctx); err != nil {
			log.Warn("tracing: spans not sent at shutdown", "err", err)
		}
	}()
	reg := prometheus.NewRegistry()
	a := &app{log: log, logOut: logOut, tracing: tr, configPath: configPath, health: health.NewServer()}
	a.applyMemoryLimit(cfg)
	a.metrics = newMetrics(reg, a)

	// Not serving until every provider has keys (Envoy's health checks keep traffic away).
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	a.health.SetServingStatus(authzService, healthpb.HealthCheckResponse_NOT_SERVING)

	inst, err := a.build(ctx, cfg, nil)
	if err != nil {
		return err
	}
	a.cur.Store(inst)
	var decisions io.Writer
	if level <= slog.LevelInfo { // decisions are logged at info
		decisions = logOut
	}
	a.authz = extauthz.NewServer(inst.policy, extauthz.Options{
		Logger:          log,
		DecisionLog:     decisions,
		Observe:         a.metrics.observe,
		AllowSampleRate: cfg.Log.AllowSampleRate,
		Tracing:         tr.forDecisions(),
	})

	lis, err := listen(cfg.GRPCAddress)
	if err != nil {
		return err
	}
	opts := []grpc.ServerOption{
		// Envoy's HTTP/2 keepalive pings every few minutes at most; accept them instead of
		// answering GOAWAY too_many_pings (envoy-extauthz.md §3).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(4 << 20),
		// Serve streams on long-lived workers: a fresh goroutine per call grows its stack
		// again every time (runtime.newstack was about 8% of a cached Check's CPU). A call
		// that finds every worker busy gets a fresh goroutine, so there are enough workers
		// for Envoy's concurrent streams, not one per core: with one, an uncached RS256
		// load still spent 9% of its CPU growing stacks.
		grpc.NumStreamWorkers(uint32(64 * runtime.GOMAXPROCS(0))),
		// Check reads requests and writes answers as bytes (extauthz.Register); health and
		// reflection keep the protobuf codec.
		extauthz.CodecOption(),
	}
	opts = append(opts, connectionLimits(cfg)...)
	if cfg.TLS != nil {
		tc, err := newTLSConfig(cfg.Path(cfg.TLS.CertFile), cfg.Path(cfg.TLS.KeyFile), cfg.Path(cfg.TLS.ClientCAFile))
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	gs := grpc.NewServer(opts...)
	a.authz.Register(gs)
	healthpb.RegisterHealthServer(gs, a.health)
	if *cfg.Reflection {
		reflection.Register(gs)
	}

	var hs *http.Server
	if cfg.HTTPAddress != "" {
		hl, err := listen(cfg.HTTPAddress)
		if err != nil {
			lis.Close()
			return err
		}
		hs = &http.Server{Addr: hl.Addr().String(), Handler: a.httpHandler(reg), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server stopped", "err", err)
			}
		}()
	}

	var fs *http.Server // the HTTP decision face
	if cfg.HTTPAuthzAddress != "" {
		fl, err := listen(cfg.HTTPAuthzAddress)
		if err != nil {
			lis.Close()
			if hs != nil {
				hs.Close()
			}
			return err
		}
		a.forward = forwardauth.New(a.authz, cfg.TrustedProxies())
		fs = &http.Server{Addr: fl.Addr().String(), Handler: a.forward, ReadHeaderTimeout: 5 * time.Second,
			MaxHeaderBytes: 256 << 10, IdleTimeout: 2 * time.Minute}
		go func() {
			if err := fs.Serve(fl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http authz server stopped", "err", err)
			}
		}()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	httpAddr, authzAddr := "", ""
	if hs != nil {
		httpAddr = hs.Addr
	}
	if fs != nil {
		authzAddr = fs.Addr
	}
	log.Info("serving", "grpc_address", lis.Addr().String(), "http_address", httpAddr,
		"http_authz_address", authzAddr,
		"providers", len(cfg.Providers), "rules", len(cfg.Rules), "version", version)

	go a.watchReadiness(ctx)
	go a.watchReloads(ctx, hup)

	select {
	case err := <-serveErr:
		return fmt.Errorf("grpc server: %w", err)
	case <-ctx.Done():
	}
	a.shutdown(gs, a.cur.Load().cfg, fs, hs)
	return nil
}

// shutdown: not ready at once, keep answering for shutdown_delay so health checks move
// traffic away, then let in-flight calls finish within shutdown_timeout.
func (a *app) shutdown(gs *grpc.Server, cfg *config.Config, https ...*http.Server) {
	a.draining.Store(true)
	a.setServing(false)
	a.log.Info("draining", "shutdown_delay", cfg.ShutdownDelay.D().String())
	time.Sleep(cfg.ShutdownDelay.D())
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	if fs := https[0]; fs != nil { // the HTTP decision face drains alongside gRPC
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
		fs.Shutdown(sctx)
		cancel()
	}
	select {
	case <-done:
	case <-time.After(cfg.ShutdownTimeout.D()):
		a.log.Warn("shutdown timeout: cancelling in-flight calls")
		gs.Stop()
	}
	for _, hs := range https[1:] {
		if hs != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			hs.Shutdown(sctx)
			cancel()
		}
	}
	a.cur.Load().stop()
	a.log.Info("stopped")
	a.logOut.Flush()
}

// applyMemoryLimit derives the soft memory limit from the token cache's bound, unless
// GOMEMLIMIT is set (gctune.SetMemoryLimit); without a cache there is no bound and no limit.
func (a *app) applyMemoryLimit(cfg *config.Config) {
	var bound int64
	if *cfg.Cache.Enabled {
		bound = cfg.Cache.MaxBytes
	}
	if limit, set := gctune.SetMemoryLimit(bound); set {
		a.log.Debug("soft memory limit from cache.max_bytes", "bytes", limit)
	}
}

// ready: keys loaded for every provider and not draining.
func (a *app) ready() bool {
	return !a.draining.Load() && a.cur.Load().policy.Ready()
}

func (a *app) setServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	a.health.SetServingStatus("", st)
	a.health.SetServingStatus(authzService, st)
}

// watchReadiness keeps gRPC health in step with key state, which changes on its own
// (first fetch, max_stale exceeded, recovery).
func (a *app) watchReadiness(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := -1
	for {
		r := 0
		if a.ready() {
			r = 1
		}
		if r != last && !a.draining.Load() {
			a.setServing(r == 1)
			a.serving.Store(r == 1)
			a.log.Info("readiness", "ready", r == 1)
			last = r
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *app) httpHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case a.draining.Load():
			http.Error(w, "draining", http.StatusServiceUnavailable)
		case !a.serving.Load():
			http.Error(w, "keys not loaded", http.StatusServiceUnavailable)
		default:
			io.WriteString(w, "ready\n")
		}
	})
	mux.Handle("GET /metrics", metricsHandler(reg))
	// RFC 9728 documents, at paths the config names: answered from the config in force.
	mux.HandleFunc("GET /", a.serveResourceMetadata)
	return mux
}

// listen accepts host:port or unix:///path.
func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}

func newLogger(w io.Writer, level string) (*slog.Logger, slog.Level) {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), l
}
