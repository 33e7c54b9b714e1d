// Command demo-upstream is the demo's backend. It answers every request with what it
// received, as JSON, so a user can see exactly what Envoy forwarded after jwt-authz let the
// request through (the x-jwt-* headers it added, the Authorization header it kept or
// removed):
//
//	demo-upstream -addr 127.0.0.1:8081
//
//	GET /healthz  200 {"status":"ok"}
//	anything else 200 {"method","path","query","headers":{name:[values]}}
//
// Header names are lower-cased, as Envoy sends them over HTTP/2, and sorted. Its log has
// one line per request with the header names only: the values include tokens.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/jwt-authz/jwt-authz/internal/probe"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "demo-upstream:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "`host:port` to listen on")
	healthURL := fs.String("healthcheck", "", "GET this `URL` and exit 0 on 200 (container health checks)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *healthURL != "" {
		return probe.Get(*healthURL)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"status": "ok"})
	})
	mux.Handle("/", echoHandler(log))

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// echo is what the upstream received.
type echo struct {
	Method string `json:"method"`
	Path   string `json:"path"`  // as sent, still percent-encoded
	Query  string `json:"query"` // raw, without the "?"
	// Headers by lower-cased name (encoding/json sorts map keys). Host is included:
	// Go moves it out of the header map, but Envoy may rewrite it and a user wants to see.
	Headers map[string][]string `json:"headers"`
}

func echoHandler(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := echo{
			Method:  r.Method,
			Path:    r.URL.EscapedPath(),
			Query:   r.URL.RawQuery,
			Headers: make(map[string][]string, len(r.Header)+1),
		}
		for name, values := range r.Header {
			lower := strings.ToLower(name)
			e.Headers[lower] = append(e.Headers[lower], values...)
		}
		if r.Host != "" {
			e.Headers["host"] = []string{r.Host}
		}
		// The path without the query (which may carry a token) and header names only.
		log.Info("request", "method", r.Method, "path", e.Path,
			"headers", slices.Sorted(maps.Keys(e.Headers)))
		writeJSON(w, e)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ") // read by people, through curl
	_ = enc.Encode(v)       // the client went away; nothing to do about it
}
