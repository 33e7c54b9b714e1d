// Package testproc runs a real program for a test: its output kept where the test can read
// it while the program runs, a wait until it is ready, and a stop that asks first (SIGTERM)
// and kills after a grace period.
package testproc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Output is a program's stdout and stderr as written so far. It is safe to read while the
// program writes.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String is everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Tail is the last n bytes written (all of them when there are fewer).
func (o *Output) Tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.b.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ErrNoLine means no line of the output matched in time.
var ErrNoLine = errors.New("testproc: no such line in the output")

// WaitLine returns the first line of the output that match accepts, looking again every
// 100ms for up to within.
func (o *Output) WaitLine(within time.Duration, match func(line string) bool) (string, error) {
	deadline := time.Now().Add(within)
	for {
		for _, l := range strings.Split(o.String(), "\n") {
			if match(l) {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			return "", ErrNoLine
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Process is one running program. When its command has Setpgid set, signals go to its
// whole process group, so a wrapper script's children stop with it.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  *Output // its stdout and stderr

	done chan struct{} // closed when the program has exited
	err  error         // its exit status, once done is closed
}

// Start starts cmd with its stdout and stderr going to the process's Out.
func Start(name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{Name: name, Cmd: cmd, Out: &Output{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Run starts bin with args until the test ends: then it is stopped (SIGTERM, killed after
// 5s) and, if the test failed, its output is logged, passed through show first (Redact
// when show is nil: a process under test may echo a token it was sent).
func Run(t testing.TB, name string, show func(string) string, bin string, args ...string) *Process {
	t.Helper()
	p, err := Start(name, exec.Command(bin, args...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(5 * time.Second)
		if t.Failed() {
			if show == nil {
				show = Redact
			}
			out := show(p.Out.String())
			t.Logf("--- %s %s ---\n%s", name, strings.Join(args, " "), out)
		}
	})
	return p
}

// Done is closed when the program has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the program's exit status (nil for exit 0) once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Signal sends sig to the program (to its group with Setpgid).
func (p *Process) Signal(sig syscall.Signal) error {
	pid := p.Cmd.Process.Pid
	if a := p.Cmd.SysProcAttr; a != nil && a.Setpgid {
		pid = -pid
	}
	return syscall.Kill(pid, sig)
}

// Exited waits up to within for the program to exit, kills it after that, and returns its
// exit status: nil for exit 0.
func (p *Process) Exited(within time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		p.Kill()
		return fmt.Errorf("%s was still running %s after SIGTERM: killed", p.Name, within)
	}
}

// Stop asks the program to exit (SIGTERM) unless it has, and kills it if it has not
// within; it returns what Exited does.
func (p *Process) Stop(within time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	return p.Exited(within)
}

// Kill ends the program at once, as a crash would, and waits for it to be gone.
func (p *Process) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Poll calls ready every interval until it returns nil, the program exits or within
// passes; the error says which, with ready's last error.
func (p *Process) Poll(within, every time.Duration, ready func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) first: %v", p.Name, p.err, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s: %v", p.Name, within, err)
		}
		time.Sleep(every)
	}
}

// WaitFor polls ready every 50ms for up to 30s, as Poll, and ends the test when it is not
// ready: what names what the test waited for.
func (p *Process) WaitFor(t testing.TB, what string, ready func() error) {
	t.Helper()
	if err := p.Poll(30*time.Second, 50*time.Millisecond, ready); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for programs that
// take their port from the command line and so cannot be handed a listener. Another
// program could take it in between; on a test machine that is rare enough.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Port is FreePort for a test, which it ends when there is none.
func Port(t testing.TB) int {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
