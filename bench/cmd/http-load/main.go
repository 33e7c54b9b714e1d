// Command http-load is an HTTP/1.1 keep-alive load generator for the Envoy benchmarks. Each
// worker owns one connection and sends GET requests carrying a bearer token (one token
// again and again, or cycling through a file of distinct tokens), at saturation (closed loop)
// or at a fixed rate (open loop), for a bounded time and count. It prints one JSON line (a
// load.Record) with the rate it sustained and the latency percentiles.
//
//	http-load -addr 127.0.0.1:8000 -tokens rs256.tokens [-distinct] [-rate 2000] \
//	    [-conns 32] [-warmup 1s -duration 5s] [-section envoy -name '...' -round 1] [-out FILE]
//
// Only a 200 counts as a success; anything else is an error, and a run with errors makes
// http-load exit 1 after printing its record. Requests are written from pre-built bytes and
// responses parsed only as far as the status and Content-Length, so one core of load
// generator outpaces one core of Envoy.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jwt-authz/jwt-authz/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "http-load:", err)
		os.Exit(1)
	}
}

// Bounds on what a response may be; Envoy's answers here are a few hundred bytes.
const (
	ioTimeout     = 10 * time.Second
	maxBody       = 1 << 20
	watchdogSlack = 30 * time.Second
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("http-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "Envoy listener host:port")
	tokensPath := fs.String("tokens", "", "file of tokens, one per line (empty: no Authorization header)")
	distinct := fs.Bool("distinct", false, "cycle through every token of the file (default: the first only)")
	path := fs.String("path", "/api/orders?limit=10", "request path")
	host := fs.String("host", "api.bench.example", "Host header")
	conns := fs.Int("conns", 32, "connections (one request in flight on each)")
	warmup := fs.Duration("warmup", time.Second, "unrecorded load before the measured window")
	duration := fs.Duration("duration", 5*time.Second, "measured window")
	rate := fs.Float64("rate", 0, "requests per second (open loop); 0 = saturation (closed loop)")
	count := fs.Uint64("n", 0, "stop the measured window after this many requests (0 = no limit)")
	section := fs.String("section", "envoy", "record label: section")
	name := fs.String("name", "", "record label: what was measured")
	round := fs.Int("round", 0, "record label: round")
	out := fs.String("out", "-", "append the JSON record to this file (- = stdout)")
	serverPIDs := fs.String("server-pids", "", "comma-separated pids of the serving processes, to record their CPU use per request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return errors.New("-addr is required")
	}
	tokens := []string{""}
	if *tokensPath != "" {
		var err error
		if tokens, err = load.ReadTokens(*tokensPath, *distinct); err != nil {
			return err
		}
	}
	reqs := make([][]byte, len(tokens))
	for i, t := range tokens {
		reqs[i] = buildRequest(*host, *path, t)
	}
	clients := make([]*client, *conns)
	for i := range clients {
		clients[i] = &client{addr: *addr}
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	pids, err := load.ParsePIDs(*serverPIDs)
	if err != nil {
		return err
	}
	opts := load.Options{Workers: *conns, Warmup: *warmup, Duration: *duration, Rate: *rate, MaxRequests: *count, ServerPIDs: pids}
	watchdog := time.AfterFunc(*warmup+*duration+watchdogSlack, func() {
		fmt.Fprintln(stderr, "http-load: run did not end; the server stopped answering")
		os.Exit(2)
	})
	res, err := load.Run(ctx, opts, func(_ context.Context, w int, seq uint64) error {
		return clients[w].do(reqs[seq%uint64(len(reqs))])
	})
	watchdog.Stop()
	if err != nil {
		return err
	}
	rec := load.Record{Section: *section, Name: *name, Round: *round, Tokens: len(tokens), Result: res}
	if *tokensPath == "" {
		rec.Tokens = 0
	}
	if err := load.Append(*out, stdout, rec); err != nil {
		return err
	}
	if res.Errors > 0 || res.Late > 0 {
		return fmt.Errorf("%s: %d errors, %d late (first: %s)", *name, res.Errors, res.Late, res.FirstError)
	}
	return nil
}

func buildRequest(host, path, token string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: http-load\r\nAccept: */*\r\n", path, host)
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// client is one keep-alive connection, redialled after any failure.
type client struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// do sends one request and reads its whole response; only a 200 is a success.
func (c *client) do(req []byte) error {
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return err
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 16<<10)
	}
	c.conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return err
	}
	status, keepAlive, err := readResponse(c.br)
	if err != nil || !keepAlive {
		c.close()
	}
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("HTTP %d", status)
	}
	return nil
}

// readResponse reads a response with a Content-Length body (which is how Envoy sends its
// direct and local replies) and discards the body.
func readResponse(br *bufio.Reader) (status int, keepAlive bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, keepAlive := -1, true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h := strings.TrimRight(string(line), "\r\n")
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "content-length":
			if length, err = strconv.Atoi(v); err != nil || length < 0 || length > maxBody {
				return 0, false, fmt.Errorf("bad content-length %q", v)
			}
		case "connection":
			keepAlive = !strings.EqualFold(v, "close")
		case "transfer-encoding":
			return 0, false, fmt.Errorf("transfer-encoding %q not supported", v)
		}
	}
	if length < 0 {
		return 0, false, errors.New("response without content-length")
	}
	if _, err := br.Discard(length); err != nil {
		return 0, false, err
	}
	return status, keepAlive, nil
}
