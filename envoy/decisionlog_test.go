package envoy

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDecisionLogKeepsEveryLine: jwt-authz batches its log lines (internal/linewriter), so
// it must write out what it holds when told to reload (SIGHUP) and to stop (SIGTERM). With
// the default log setting (every allow logged) and traffic through Envoy, a SIGHUP in the
// middle and a SIGTERM at the end, the log holds exactly one decision line per decision the
// server counted, and every line of its output is one whole JSON object.
func TestDecisionLogKeepsEveryLine(t *testing.T) {
	s := startStack(t, stackOptions{editAuthz: func(t *testing.T, root map[string]any, _ ports) {
		root["shutdown_delay"] = "0s"
		if _, set := root["log"]; set {
			t.Fatal("jwt-authz.yaml sets log: this test wants the default")
		}
	}})
	l := s.startLoad(t, 3, 0)
	l.waitUntil(t, "allowed requests before SIGHUP", func(c loadCounts) bool { return c.Allowed >= 50 })
	if err := s.authz.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.authz.WaitFor(t, "the reload after SIGHUP", func() error {
		if !strings.Contains(s.authz.Out.String(), `"msg":"config reloaded"`) {
			return errors.New("no \"config reloaded\" line yet")
		}
		return nil
	})
	after := l.snapshot().Allowed
	l.waitUntil(t, "allowed requests after SIGHUP", func(c loadCounts) bool { return c.Allowed >= after+50 })
	const denials = 5
	for range denials {
		if r := s.do(t, "GET", "/api/things", http.Header{}, ""); r.status != http.StatusUnauthorized {
			t.Fatalf("GET /api/things without a token = %d, want 401", r.status)
		}
	}
	l.stop()
	l.check(t)
	decided := metric(t, "http://"+local(s.AuthzHTTP)+"/metrics", "jwt_authz_decisions_total")

	s.authz.Signal(syscall.SIGTERM)
	if err := s.authz.Exited(30 * time.Second); err != nil {
		t.Fatalf("jwt-authz after SIGTERM: %v, want exit 0", err)
	}
	out := strings.TrimSuffix(s.authz.Out.String(), "\n")
	// The last line is logged just before exit: seeing it shows the final flush happened.
	if !strings.HasSuffix(out, `"msg":"stopped"}`) {
		t.Errorf("jwt-authz output does not end with its \"stopped\" line: %s", redact(out[max(0, len(out)-300):]))
	}
	lines, missing := 0, 0
	for i, line := range strings.Split(out, "\n") {
		var rec struct {
			Msg, Decision, Reason string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("jwt-authz output line %d is not one JSON object (%v): %s", i+1, err, redact(line))
		}
		if rec.Msg == "decision" {
			lines++
			if rec.Reason == "missing_token" {
				missing++
			}
		}
	}
	if float64(lines) != decided || missing != denials {
		t.Errorf("decision log: %d lines (%d missing_token), want %v (jwt_authz_decisions_total) with %d missing_token",
			lines, missing, decided, denials)
	}
}
