package envoy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// TestREADMEWalkthrough runs the README's walkthrough as a new user would: "make demo" as
// written (it builds, starts the four processes on the compose ports of 127.0.0.1 and prints
// its hints), then the walkthrough's shell block, word for word, in bash with errexit and
// pipefail so that any step that fails stops it; then the sixth login of a minute, which the
// README says fails loudly; then Ctrl-C, which stops the demo. The fixed ports need a
// network namespace of its own, so it runs in one, as TestComposeServices does.
func TestREADMEWalkthrough(t *testing.T) {
	if os.Getenv(inNamespace) != "" {
		readmeWalkthrough(t)
		return
	}
	requireNamespaces(t)
	for _, tool := range []string{"make", "curl", "jq", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walkthrough needs %s on PATH: %v", tool, err)
		}
	}
	runInNamespaces(t, "^TestREADMEWalkthrough$", []string{"localhost"}, envoyBinary(t))
}

// walkthroughBlock is the README's walkthrough: the ```sh block that starts with "# Log in".
func walkthroughBlock(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.HasPrefix(b[1], "# Log in") {
			return b[1]
		}
	}
	t.Fatal("README.md has no ```sh block starting with # Log in")
	return ""
}

func readmeWalkthrough(t *testing.T) {
	block := walkthroughBlock(t)

	out := &testproc.Output{}
	demo := exec.Command("make", "demo")
	demo.Dir = repoRoot
	demo.Stdout, demo.Stderr = out, out
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C signals the whole group
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- demo.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = syscall.Kill(-demo.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("--- make demo ---\n%s", redact(out.String()))
		}
	}()
	deadline := time.Now().Add(5 * time.Minute) // it builds the binaries first
	for !strings.Contains(out.String(), "Ctrl-C stops everything") {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("make demo exited before the demo was up: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("make demo: not up after 5 minutes")
		}
	}
	for _, want := range []string{"http://127.0.0.1:8000/", "http://127.0.0.1:8001/", "127.0.0.1:9002/readyz", "/metrics", "5 logins per user per minute"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("make demo's hints do not mention %s", want)
		}
	}

	// The block as written, in one shell, stopping at the first failure.
	sh := func(script string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	stdout, stderr, err := sh(block)
	if err != nil {
		t.Fatalf("the README walkthrough failed: %v\nstdout:\n%s\nstderr:\n%s", err, redact(stdout), redact(stderr))
	}
	t.Logf("the README walkthrough:\n%s", redact(stdout))
	for _, want := range []string{
		`"x-jwt-sub": [`,               // the echo shows the identity header...
		`"alice"`,                      // ...set from alice's token
		"HTTP/1.1 401",                 // no token
		`error="invalid_token"`,        // a forged signature
		`"reason":"invalid_signature"`, // and why
		"HTTP/1.1 403",                 // alice on /admin
		`error="insufficient_scope"`,   //
		`scope="admin"`,                //
		`"path": "/public/hello"`,      // the public path reached the upstream
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the README walkthrough's output lacks %s", want)
		}
	}
	if strings.Contains(stdout, `"x-jwt-sub": [
      "admin"`) {
		t.Errorf("the upstream saw the smuggled x-jwt-sub: admin")
	}

	// The README: the sixth login of a minute answers 429 and the login command says so.
	login := block[strings.Index(block, "TOKEN=$("):]
	login = login[:strings.Index(login, "')\n")+3]
	var last string
	for i := 2; i <= 6; i++ {
		_, stderr, err := sh(login + `printf '%s' "$TOKEN"`)
		if i < 6 && err != nil {
			t.Fatalf("login %d of the minute: %v %s", i, err, stderr)
		}
		last = stderr
		if i == 6 && err == nil {
			t.Errorf("the sixth login of the minute succeeded, want it to fail loudly")
		}
	}
	if !strings.Contains(last, "login failed") || !strings.Contains(last, "too_many_requests") {
		t.Errorf("the sixth login's message %q, want login failed ... too_many_requests", last)
	}

	// Ctrl-C stops everything.
	if err := syscall.Kill(-demo.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		stopped = true
	case <-time.After(30 * time.Second):
		t.Fatal("make demo: still running 30s after Ctrl-C")
	}
	if !strings.Contains(out.String(), "stopping") {
		t.Errorf("make demo did not say it stopped")
	}
	if err := exec.Command("curl", "-sf", "http://127.0.0.1:8000/public/hello").Run(); err == nil {
		t.Errorf("Envoy still answers after Ctrl-C")
	}
}
