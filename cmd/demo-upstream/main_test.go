package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// logSink collects run's JSON log and hands over the address from its "listening" line.
type logSink struct {
	mu   sync.Mutex
	all  bytes.Buffer
	addr chan string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	var line struct{ Msg, Addr string }
	if json.Unmarshal(p, &line) == nil && line.Msg == "listening" { // slog writes one line per call
		l.addr <- line.Addr
	}
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// start runs demo-upstream on 127.0.0.1:0 until the end of the test and returns its URL
// and its log.
func start(t *testing.T) (string, *logSink) {
	t.Helper()
	logs := &logSink{addr: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run after cancel = %v, want nil", err)
		}
	})
	select {
	case addr := <-logs.addr:
		return "http://" + addr, logs
	case err := <-done:
		t.Fatalf("run = %v before listening", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("no listening line after 10s; log:\n%s", logs)
	}
	return "", nil
}

func TestEcho(t *testing.T) {
	base, logs := start(t)
	const secret = "Bearer eyJhbGciOiJFUzI1NiJ9.secret-token.sig"
	tests := []struct {
		name    string
		method  string
		target  string
		headers [][2]string
		want    echo
	}{
		{
			name:   "headers forwarded by Envoy",
			method: "GET",
			target: "/api/items?limit=2&q=a%20b",
			headers: [][2]string{
				{"Authorization", secret},
				{"X-Jwt-Sub", "alice"},
				{"x-jwt-scope", "read"},
				{"X-Multi", "one"},
				{"X-Multi", "two"},
			},
			want: echo{Method: "GET", Path: "/api/items", Query: "limit=2&q=a%20b", Headers: map[string][]string{
				"accept-encoding": {"gzip"},
				"authorization":   {secret},
				"user-agent":      {"Go-http-client/1.1"},
				"x-jwt-scope":     {"read"},
				"x-jwt-sub":       {"alice"},
				"x-multi":         {"one", "two"},
			}},
		},
		{
			name:   "other methods and encoded paths",
			method: "DELETE",
			target: "/a%2Fb/c",
			want: echo{Method: "DELETE", Path: "/a%2Fb/c", Headers: map[string][]string{
				"accept-encoding": {"gzip"},
				"user-agent":      {"Go-http-client/1.1"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, base+tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tt.headers {
				req.Header.Add(h[0], h[1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			var got echo
			if err := json.Unmarshal(raw, &got); err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("%s %s = %d %s (%v), want 200 JSON", tt.method, tt.target, res.StatusCode, raw, err)
			}
			tt.want.Headers["host"] = []string{strings.TrimPrefix(base, "http://")}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s %s echo (-want +got):\n%s", tt.method, tt.target, diff)
			}
		})
	}
	if l := logs.String(); strings.Contains(l, "secret-token") || strings.Contains(l, "alice") || strings.Contains(l, "limit=2") {
		t.Errorf("log contains header values or the query:\n%s", l)
	}
	if l := logs.String(); !strings.Contains(l, `"x-jwt-sub"`) {
		t.Errorf("log does not name the headers it received:\n%s", l)
	}
}

func TestHealthz(t *testing.T) {
	base, _ := start(t)
	res, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !json.Valid(body) {
		t.Errorf("GET /healthz = %d %s, want 200 JSON", res.StatusCode, body)
	}
}

func TestRunErrors(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"stray"}, {"-addr", "256.0.0.1:1"}} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}
