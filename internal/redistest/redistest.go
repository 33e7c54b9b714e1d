// Package redistest starts a throwaway redis-server (or valkey-server) on 127.0.0.1 for
// tests, on a free port, without persistence, stopped when the test ends. Without either
// binary the test is skipped, or fails when CI is set (.ci/run installs redis-server).
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// Start runs a server with extra arguments (such as "--requirepass", "x") and returns its
// host:port once it answers PING (with the password, when one is given).
func Start(t testing.TB, extra ...string) string {
	t.Helper()
	bin := ""
	for _, name := range []string{"redis-server", "valkey-server"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no redis-server or valkey-server on PATH (apt-get install redis-server)")
		}
		t.Skip("no redis-server or valkey-server on PATH")
	}
	port := testproc.Port(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", t.TempDir()}, extra...)
	p, err := testproc.Start(bin, exec.Command(bin, args...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- %s ---\n%s", bin, p.Out)
		}
	})
	password := ""
	for i, a := range extra {
		if a == "--requirepass" && i+1 < len(extra) {
			password = extra[i+1]
		}
	}
	if err := p.Poll(10*time.Second, 50*time.Millisecond, func() error { return ping(addr, password) }); err != nil {
		t.Fatalf("%s on %s: no PONG: %v\n%s", bin, addr, err, p.Out)
	}
	return addr
}

func ping(addr, password string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(c)
	if password != "" {
		fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			return fmt.Errorf("AUTH: %q %v", l, err)
		}
	}
	fmt.Fprint(c, "*1\r\n$4\r\nPING\r\n")
	l, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "+PONG") {
		return fmt.Errorf("PING: %q %v", l, err)
	}
	return nil
}
