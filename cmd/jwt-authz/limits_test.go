package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/jwt-authz/jwt-authz/config"
)

// rawH2 is a hostile HTTP/2 client: it opens Check streams and leaves them half-sent or
// resets them, and counts how the server answers. Its reader answers SETTINGS and PING so
// the server never waits on it.
type rawH2 struct {
	conn  net.Conn
	mu    sync.Mutex // guards the writer
	bw    *bufio.Writer
	fr    *http2.Framer
	block []byte // the HEADERS block of a Check call
	next  uint32 // next stream id

	maxStreams atomic.Int64 // the server's SETTINGS_MAX_CONCURRENT_STREAMS; -1 if never sent
	refused    atomic.Int64 // RST_STREAM REFUSED_STREAM
	goAway     atomic.Bool
	done       chan struct{} // closed when the reader stops
}

func dialRawH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &rawH2{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), next: 1, done: make(chan struct{})}
	c.maxStreams.Store(-1)
	c.fr = http2.NewFramer(c.bw, bufio.NewReader(conn))
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/envoy.service.auth.v3.Authorization/Check"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	c.block = hb.Bytes()
	c.mu.Lock()
	_, _ = c.bw.WriteString(http2.ClientPreface)
	_ = c.fr.WriteSettings()
	err = c.bw.Flush()
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	go c.read()
	t.Cleanup(func() { c.conn.Close(); <-c.done })
	// Flood only after the server's SETTINGS arrived: on a busy machine the writes could
	// otherwise all go out before the reader ever runs, and the test would see no limit.
	if !waitUntil(10*time.Second, func() bool { return c.maxStreams.Load() != -1 }) {
		t.Fatal("no SETTINGS with SETTINGS_MAX_CONCURRENT_STREAMS from the server within 10s")
	}
	return c
}

func (c *rawH2) read() {
	defer close(c.done)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				c.maxStreams.Store(int64(v))
			}
			c.write(func() error { return c.fr.WriteSettingsAck() })
		case *http2.PingFrame:
			if !f.IsAck() {
				c.write(func() error { return c.fr.WritePing(true, f.Data) })
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode == http2.ErrCodeRefusedStream {
				c.refused.Add(1)
			}
		case *http2.GoAwayFrame:
			c.goAway.Store(true)
		}
	}
}

func (c *rawH2) write(f func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f() == nil {
		_ = c.bw.Flush()
	}
}

// openHalfSent opens n Check streams, each with a message prefix announcing 1,000 bytes
// and only 50 of them sent, and no END_STREAM: calls the server must hold open.
func (c *rawH2) openHalfSent(n int) error {
	part := append([]byte{0, 0, 0, 0x03, 0xe8}, make([]byte, 50)...)
	return c.open(n, func(id uint32) error { return c.fr.WriteData(id, false, part) })
}

// openAndReset opens n Check streams and resets each at once (HTTP/2 rapid reset).
func (c *rawH2) openAndReset(n int) error {
	return c.open(n, func(id uint32) error { return c.fr.WriteRSTStream(id, http2.ErrCodeCancel) })
}

func (c *rawH2) open(n int, then func(id uint32) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range n {
		id := c.next
		c.next += 2
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block, EndHeaders: true}); err != nil {
			return err
		}
		if err := then(id); err != nil {
			return err
		}
		if i%256 == 255 {
			if err := c.bw.Flush(); err != nil {
				return err
			}
		}
	}
	return c.bw.Flush()
}

// memory is the process's live heap plus goroutine stacks after a collection, its
// goroutines and resident set.
type memory struct {
	heap       uint64 // live heap + stacks
	goroutines int
	rss        uint64 // 0 where /proc is missing
}

func measure() memory {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memory{heap: ms.HeapAlloc + ms.StackInuse, goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.rss = kb << 10
			}
		}
	}
	return m
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// startLimitsServer runs the server with extra top-level config lines and checks it answers.
func startLimitsServer(t *testing.T, extra string) (*runningServer, *idp, authv3.AuthorizationClient) {
	t.Helper()
	issuer := newIdP(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfgPath, extra+validConfig(issuer.srv.URL, "/api"))
	s := startServer(t, cfgPath)
	waitReady(t, s.httpURL)
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	if code := checkCode(t, client, "/api/x", issuer.sign(t, nil)); code != 0 {
		t.Fatalf("Check(valid token) status %d before the flood, want 0", code)
	}
	return s, issuer, client
}

// waitUntil polls cond for at most limit; the bound keeps a broken server from hanging the
// test, it is not a timing assertion.
func waitUntil(limit time.Duration, cond func() bool) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// Issue 18, point 2: one connection opens 20,000 Check streams and leaves them half-sent.
// The server advertises and enforces grpc_max_concurrent_streams (default 1024): the rest
// are refused, goroutines and heap stay bounded, other clients are still answered, and the
// memory is given back when the connection closes.
func TestStreamFlood(t *testing.T) {
	const streams = 20_000
	limit := config.DefaultGRPCMaxConcurrentStreams
	s, issuer, client := startLimitsServer(t, "")
	before := measure()

	flood := dialRawH2(t, s.grpcAddr)
	if err := flood.openHalfSent(streams); err != nil {
		t.Fatalf("sending %d streams: %v", streams, err)
	}
	waitUntil(30*time.Second, func() bool { return flood.refused.Load() >= int64(streams-limit) })
	during := measure()
	t.Logf("flood of %d half-sent streams on one connection: SETTINGS_MAX_CONCURRENT_STREAMS %d, %d refused, goroutines %d -> %d (%+d), heap+stacks %.1f -> %.1f MiB (%+.1f), RSS %.1f -> %.1f MiB",
		streams, flood.maxStreams.Load(), flood.refused.Load(), before.goroutines, during.goroutines, during.goroutines-before.goroutines,
		mib(before.heap), mib(during.heap), mib(during.heap)-mib(before.heap), mib(before.rss), mib(during.rss))

	if got := flood.maxStreams.Load(); got != int64(limit) {
		t.Errorf("server SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", got, limit)
	}
	if got := flood.refused.Load(); got < int64(streams-limit) {
		t.Errorf("%d of %d streams refused, want at least %d", got, streams, streams-limit)
	}
	if d := during.goroutines - before.goroutines; d > limit+256 {
		t.Errorf("goroutines grew by %d during the flood, want at most %d", d, limit+256)
	}
	if d := int64(during.heap) - int64(before.heap); d > 64<<20 {
		t.Errorf("heap+stacks grew by %.1f MiB during the flood, want at most 64 MiB", float64(d)/(1<<20))
	}
	// Other connections are still served while the flood holds its streams.
	if code := checkCode(t, client, "/api/x", issuer.sign(t, nil)); code != 0 {
		t.Errorf("Check(valid token) during the flood: status %d, want 0", code)
	}

	flood.conn.Close()
	<-flood.done
	settled := waitUntil(30*time.Second, func() bool { return runtime.NumGoroutine() <= before.goroutines+32 })
	after := measure()
	t.Logf("after the connection closed: goroutines %d, heap+stacks %.1f MiB (%+.1f from before the flood), RSS %.1f MiB",
		after.goroutines, mib(after.heap), mib(after.heap)-mib(before.heap), mib(after.rss))
	if !settled {
		t.Errorf("goroutines %d after the flood connection closed, want back near %d", after.goroutines, before.goroutines)
	}
	if d := int64(after.heap) - int64(before.heap); d > 16<<20 {
		t.Errorf("heap+stacks %.1f MiB above their level before the flood after the connection closed, want at most 16", float64(d)/(1<<20))
	}
}

// HTTP/2 rapid reset (CVE-2023-44487): streams opened and reset at once. With a stream
// limit, grpc-go stops reading a connection while more handlers than the limit are still
// running, so the reset streams cannot pile up; the server keeps answering everyone else.
func TestRapidReset(t *testing.T) {
	const (
		streams = 20_000
		limit   = 64
	)
	s, issuer, client := startLimitsServer(t, "grpc_max_concurrent_streams: "+strconv.Itoa(limit)+"\n")
	before := measure()

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int64(runtime.NumGoroutine()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	flood := dialRawH2(t, s.grpcAddr)
	err := flood.openAndReset(streams)
	// The server reads the last frames after the writes return; let it drain them.
	waitUntil(10*time.Second, func() bool { return runtime.NumGoroutine() <= before.goroutines+32 })
	close(stop)
	<-sampled
	t.Logf("rapid reset of %d streams (limit %d): write error %v, GOAWAY %v, SETTINGS_MAX_CONCURRENT_STREAMS %d, goroutines %d, peak %d (%+d)",
		streams, limit, err, flood.goAway.Load(), flood.maxStreams.Load(), before.goroutines, peak.Load(), peak.Load()-int64(before.goroutines))

	if got := flood.maxStreams.Load(); got != limit {
		t.Errorf("server SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", got, limit)
	}
	if d := peak.Load() - int64(before.goroutines); d > limit+256 {
		t.Errorf("goroutines peaked %d above their level during the rapid reset, want at most %d", d, limit+256)
	}
	if code := checkCode(t, client, "/api/x", issuer.sign(t, nil)); code != 0 {
		t.Errorf("Check(valid token) after the rapid reset: status %d, want 0", code)
	}
}
