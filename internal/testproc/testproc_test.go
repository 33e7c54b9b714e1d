package testproc

import (
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sh(t *testing.T, script string, group bool) *Process {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	if group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	p, err := Start("sh", cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func isLine(want string) func(string) bool { return func(l string) bool { return l == want } }

func TestOutputWhileRunning(t *testing.T) {
	p := sh(t, `echo starting; echo "listening on port 1234" >&2; exec sleep 30`, false)
	line, err := p.Out.WaitLine(30*time.Second, func(l string) bool { return strings.HasSuffix(l, "1234") })
	if err != nil || line != "listening on port 1234" {
		t.Fatalf("WaitLine = %q, %v; output so far:\n%s", line, err, p.Out.String())
	}
	if got := p.Out.String(); !strings.HasPrefix(got, "starting\n") {
		t.Errorf("Out = %q, want stdout and stderr in order", got)
	}
	if got := p.Out.Tail(5); got != "1234\n" {
		t.Errorf("Tail(5) = %q", got)
	}
	if got := p.Out.Tail(1 << 20); got != p.Out.String() {
		t.Errorf("Tail(1 MiB) = %q, want all of it", got)
	}
	if _, err := p.Out.WaitLine(200*time.Millisecond, func(l string) bool { return l == "never printed" }); !errors.Is(err, ErrNoLine) {
		t.Errorf("WaitLine(never printed) = %v, want ErrNoLine", err)
	}
}

func TestStopAsksFirst(t *testing.T) {
	// sh runs a trap only between commands: wait is one it leaves on a signal.
	p := sh(t, `trap 'echo got TERM; kill $!; exit 3' TERM; echo up; sleep 30 & wait`, false)
	if _, err := p.Out.WaitLine(30*time.Second, isLine("up")); err != nil {
		t.Fatal(err)
	}
	err := p.Stop(30 * time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Stop = %v, want exit status 3 from the TERM trap", err)
	}
	if !strings.Contains(p.Out.String(), "got TERM") {
		t.Errorf("output %q lacks the trap's line", p.Out.String())
	}
	if err := p.Stop(time.Second); !errors.As(err, &exit) {
		t.Errorf("Stop again = %v, want the same exit status", err)
	}
}

func TestStopKillsWhatIgnoresTERM(t *testing.T) {
	p := sh(t, `trap '' TERM; echo up; while :; do sleep 0.1; done`, false)
	if _, err := p.Out.WaitLine(30*time.Second, isLine("up")); err != nil {
		t.Fatal(err)
	}
	err := p.Stop(300 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("Stop = %v, want the still-running error", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before the program was gone")
	}
}

// TestStopSignalsTheGroup: with Setpgid, SIGTERM reaches the script's child too. Were it
// sent to the shell alone, the child would keep the output pipe open, Stop would time out
// and kill, and report the program as still running.
func TestStopSignalsTheGroup(t *testing.T) {
	p := sh(t, `sleep 30 & echo "child $!"; wait`, true)
	if _, err := p.Out.WaitLine(30*time.Second, func(l string) bool { return strings.HasPrefix(l, "child ") }); err != nil {
		t.Fatal(err)
	}
	err := p.Stop(10 * time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("Stop = %v, want the shell ended by SIGTERM", err)
	}
}

func TestKill(t *testing.T) {
	p := sh(t, `trap '' TERM; sleep 30 & wait`, true)
	p.Kill()
	var exit *exec.ExitError
	if err := p.Err(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("Err after Kill = %v, want killed", err)
	}
}

func TestPoll(t *testing.T) {
	p := sh(t, `exec sleep 30`, false)
	calls := 0
	if err := p.Poll(30*time.Second, time.Millisecond, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Errorf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
	err := p.Poll(100*time.Millisecond, 10*time.Millisecond, func() error { return errors.New("never ready") })
	if err == nil || !strings.Contains(err.Error(), "not after 100ms: never ready") {
		t.Errorf("Poll(never ready) = %v, want a timeout naming the last error", err)
	}

	gone := sh(t, `echo bye; exit 7`, false)
	err = gone.Poll(30*time.Second, 10*time.Millisecond, func() error { return errors.New("refused") })
	if err == nil || !strings.Contains(err.Error(), "exited (exit status 7) first: refused") {
		t.Errorf("Poll on an exited program = %v, want it to say it exited", err)
	}
}

func TestStartFails(t *testing.T) {
	if _, err := Start("nothing", exec.Command("/nonexistent/program")); err == nil || !strings.Contains(err.Error(), "start nothing") {
		t.Errorf("Start(missing program) = %v", err)
	}
}

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("listen on the free port %d: %v", port, err)
	}
	l.Close()
}
