package idp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
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

func local(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// startProcess runs a provider's server in a process group of its own, so that stopping it
// ends its children too (kc.sh runs java as a child).
func startProcess(name string, env []string, bin string, args ...string) (*testproc.Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	// Setpgid: a stop signals the whole group. Pdeathsig: a test binary that dies without
	// Stop does not leave a server behind (kc.sh forwards SIGTERM to java).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	p, err := testproc.Start(name, cmd)
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	return p, nil
}

// waitReady polls GET url every 200ms until it answers 200, the process exits or within
// passes.
func waitReady(p *testproc.Process, url string, within time.Duration) error {
	err := p.Poll(within, 200*time.Millisecond, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("idp: %s not ready: %w\n%s", p.Name, err, logTail(p))
	}
	return nil
}

// stopProcess sends SIGTERM to the process group and SIGKILL after 10s.
func stopProcess(p *testproc.Process) { _ = p.Stop(10 * time.Second) }

// logTail is the last 4 KiB of the process's output, credentials redacted, for error
// messages.
func logTail(p *testproc.Process) string { return testproc.Redact(p.Out.Tail(4096)) }
