package envoy

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// TestRollingRestart runs two jwt-authz replicas behind the authz cluster and restarts them
// one after the other while clients keep calling the API through Envoy, and not one request
// may fail. Envoy has no retry policy for the checks: the drain alone must make a restart
// invisible. On SIGTERM a replica reports NOT_SERVING to gRPC health at once and keeps
// answering for shutdown_delay; Envoy's next health check sees it (unhealthy_threshold 1)
// and new checks go to the other replica; only then does the replica stop accepting calls
// (GOAWAY), finish those in flight and exit 0. The next check comes within interval ×
// unhealthy_threshold and answers within its timeout, 1.5s here at worst, so shutdown_delay
// (3s) leaves a margin for a busy machine. With shutdown_delay 0 this test fails: Envoy
// sends checks to the stopped replica until its health check notices, and each is a 503.
func TestRollingRestart(t *testing.T) {
	s := startStack(t, stackOptions{
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			root["shutdown_delay"] = "3s"
		},
		editEnvoy: secondReplica,
	})
	fileB := s.authzConfig(t, "jwt-authz-b.yaml", s.Authz2, s.AuthzHTTP2)
	b := s.startAuthz(t, "jwt-authz B", fileB, s.AuthzHTTP2)
	s.waitHealthy(t, "authz", s.Authz2)

	replicas := []struct {
		name           string
		grpc, http     int
		file           string
		proc           *testproc.Process
		checksAnswered float64 // before its SIGTERM
	}{
		{name: "jwt-authz A", grpc: s.Authz, http: s.AuthzHTTP, file: s.authzFile, proc: s.authz},
		{name: "jwt-authz B", grpc: s.Authz2, http: s.AuthzHTTP2, file: fileB, proc: b},
	}

	l := s.startLoad(t, 3, 0)
	l.waitUntil(t, "requests allowed before the restart", func(c loadCounts) bool { return c.Allowed >= 20 })
	before, start := l.snapshot(), time.Now()
	for i := range replicas {
		r := &replicas[i]
		r.checksAnswered = metric(t, "http://"+local(r.http)+"/metrics", "jwt_authz_decisions_total")
		sent := time.Now()
		r.proc.Signal(syscall.SIGTERM)
		s.envoy.WaitFor(t, r.name+" unhealthy", httpOK(s.admin+"/clusters", "authz::"+local(r.grpc)+"::health_flags::/failed_active_hc"))
		t.Logf("%s: SIGTERM after %v checks; Envoy saw it unhealthy %v later", r.name, r.checksAnswered, time.Since(sent).Round(time.Millisecond))
		if err := r.proc.Exited(30 * time.Second); err != nil {
			t.Fatalf("%s after SIGTERM: %v, want exit 0", r.name, err)
		}
		r.proc = s.startAuthz(t, r.name+" (restarted)", r.file, r.http)
		s.waitHealthy(t, "authz", r.grpc)
	}
	// Traffic comes back to each restarted replica.
	for _, r := range replicas {
		r.proc.WaitFor(t, "a check answered after the restart", func() error {
			if metric(t, "http://"+local(r.http)+"/metrics", "jwt_authz_decisions_total") == 0 {
				return errors.New("none yet")
			}
			return nil
		})
	}
	during, took := l.snapshot().sub(before), time.Since(start)
	c := l.stop()
	l.check(t)
	t.Logf("during the rolling restart (%v): %d requests, %d allowed, %d failed; in all: %d requests, %d failed",
		took.Round(100*time.Millisecond), during.Requests, during.Allowed, during.Failed, c.Requests, c.Failed)
	if during.Requests == 0 {
		t.Error("no request flowed during the rolling restart; it proves nothing")
	}
	t.Logf("Envoy:\n%s", envoyStats(t, s, "ext_authz.jwt.(ok|denied|error)|cluster.authz.(health_check.(failure|success)|upstream_rq_(total|timeout|retry)|upstream_cx_connect_fail)"))
}

// secondReplica is an edit of envoy.yaml: the authz cluster gets a second endpoint, a
// replica on ports.Authz2, and health checks every 0.5s that turn a host unhealthy (and
// healthy) at the first answer.
func secondReplica(t *testing.T, root map[string]any, p ports) {
	c := clusterNamed(t, root, "authz")
	eps, err := list(c, "load_assignment", "endpoints")
	if err != nil || len(eps) != 1 {
		t.Fatalf("authz cluster: want 1 locality (%v)", err)
	}
	lbs, err := list(eps[0], "lb_endpoints")
	if err != nil {
		t.Fatal(err)
	}
	second := map[string]any{"endpoint": map[string]any{"address": map[string]any{
		"socket_address": map[string]any{"address": "127.0.0.1", "port_value": p.Authz2}}}}
	eps[0].(map[string]any)["lb_endpoints"] = append(lbs, second)
	// With two static hosts, one unhealthy leaves half of them healthy: not under
	// the default panic threshold (50%), so Envoy never routes to a draining host,
	// and static hosts are never removed, so ignore_health_on_host_removal does not
	// apply.
	hcs, err := list(c, "health_checks")
	if err != nil || len(hcs) != 1 {
		t.Fatalf("authz cluster: want 1 health check (%v)", err)
	}
	hc := hcs[0].(map[string]any)
	hc["interval"], hc["no_traffic_interval"] = "0.5s", "0.5s"
	hc["unhealthy_threshold"], hc["healthy_threshold"] = 1, 1
}
