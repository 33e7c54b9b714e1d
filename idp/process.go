package idp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNotInstalled means a provider could not be installed or found (no Java 21+, no node,
// no network on first use). Tests skip on it, except under CI (see Need).
var ErrNotInstalled = errors.New("idp: not installed")

// Need ends a test that cannot run because err: a skip on a developer's machine, a failure
// under CI (CI set), where a skipped end-to-end test would prove nothing.
func Need(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	t.Fatal(err)
}

// dir is this package's directory, where the install scripts live.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// install runs one of the install scripts and returns the path it prints.
func install(script string) (string, error) {
	cmd := exec.Command(filepath.Join(dir(), script))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v\n%s", ErrNotInstalled, script, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. The providers take
// their ports from the command line, so they cannot be handed a listener.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func local(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// process is a provider's server process, in a process group of its own so that Stop ends
// its children too (kc.sh runs java as a child).
type process struct {
	name string
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
	err  error
}

func startProcess(name string, env []string, bin string, args ...string) (*process, error) {
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &logBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Setpgid: Stop signals the whole group. Pdeathsig: a test binary that dies without
	// Stop does not leave a server behind (kc.sh forwards SIGTERM to java).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("idp: start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls GET url until it answers 200, the process exits or within passes.
func (p *process) waitReady(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		select {
		case <-p.done:
			return fmt.Errorf("idp: %s exited (%v) before it was ready:\n%s", p.name, p.err, p.out.tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("idp: %s not ready after %s: %v\n%s", p.name, within, err, p.out.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop sends SIGTERM to the process group and SIGKILL after 10s.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// logBuffer keeps a process's output for error messages.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tail is the last 4 KiB of the output.
func (l *logBuffer) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.b.Bytes()
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}
