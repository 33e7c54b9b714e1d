package envoy

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"
)

// loadCompose loads ../docker-compose.yaml the way "docker compose" does (compose-go is its
// loader), without the caller's environment, so the test sees what a fresh checkout gets.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, "docker-compose.yaml")},
		cli.WithWorkingDirectory(repoRoot), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("loading docker-compose.yaml: %v", err)
	}
	return p
}

// goServices are the compose services that run this module's binaries, with the port each
// one's health check probes.
var goServices = map[string]string{
	"jwt-authz":     "http://127.0.0.1:9002/readyz",
	"demo-issuer":   "http://127.0.0.1:8080/healthz",
	"demo-upstream": "http://127.0.0.1:8081/healthz",
}

func TestCompose(t *testing.T) {
	p := loadCompose(t)

	want := []string{"demo-issuer", "demo-upstream", "envoy", "jwt-authz"}
	if diff := cmp.Diff(want, p.ServiceNames()); diff != "" {
		t.Fatalf("services (-want +got)\n%s", diff)
	}

	envoy := p.Services["envoy"]
	if want := "envoyproxy/envoy:v" + envoyVersion; envoy.Image != want {
		t.Errorf("envoy image = %q, want %q (the version the tests run)", envoy.Image, want)
	}

	// One image, built from the Dockerfile at the root, for the three Go services; each runs
	// its own binary and checks its own health with it (the image has no shell or curl).
	for name, health := range goServices {
		s := p.Services[name]
		if s.Image != p.Services["jwt-authz"].Image || s.Image == "" {
			t.Errorf("%s image = %q, want the shared image %q", name, s.Image, p.Services["jwt-authz"].Image)
		}
		if s.Build == nil || s.Build.Context != repoRoot || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s build = %+v, want context %s, Dockerfile", name, s.Build, repoRoot)
		}
		bin := "/usr/local/bin/" + name
		if len(s.Command) == 0 || s.Command[0] != bin {
			t.Errorf("%s command = %q, want it to start with %s", name, s.Command, bin)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable {
			t.Errorf("%s has no health check", name)
		} else if diff := cmp.Diff(types.HealthCheckTest{"CMD", bin, "-healthcheck", health}, s.HealthCheck.Test); diff != "" {
			t.Errorf("%s healthcheck.test (-want +got)\n%s", name, diff)
		}
		if s.User != "" && s.User != "nonroot" && s.User != "65532" {
			t.Errorf("%s user = %q: the image's nonroot user is the one to run as", name, s.User)
		}
	}
	if s := envoy.HealthCheck; s == nil || s.Disable || len(s.Test) == 0 {
		t.Errorf("envoy has no health check")
	}

	// Start order: Envoy only once everything behind it answers; jwt-authz once the issuer
	// serves its JWKS (its readiness needs keys).
	deps := map[string]map[string]string{}
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			if deps[name] == nil {
				deps[name] = map[string]string{}
			}
			deps[name][dep] = d.Condition
		}
	}
	healthy := types.ServiceConditionHealthy
	if diff := cmp.Diff(map[string]map[string]string{
		"envoy":     {"jwt-authz": healthy, "demo-issuer": healthy, "demo-upstream": healthy},
		"jwt-authz": {"demo-issuer": healthy},
	}, deps); diff != "" {
		t.Errorf("depends_on (-want +got)\n%s", diff)
	}

	// Envoy on 8000 and the demo page's second origin on 8001; the admin API (no auth) and
	// jwt-authz's metrics and readiness on the host's loopback only.
	type port struct{ Service, HostIP, Published string }
	var published []port
	for name, s := range p.Services {
		for _, pc := range s.Ports {
			published = append(published, port{name, pc.HostIP, pc.Published + "->" + strconv.Itoa(int(pc.Target))})
		}
	}
	slices.SortFunc(published, func(a, b port) int { return strings.Compare(a.Published, b.Published) })
	if diff := cmp.Diff([]port{{"envoy", "", "8000->8000"}, {"demo-issuer", "", "8001->8001"},
		{"jwt-authz", "127.0.0.1", "9002->9002"}, {"envoy", "127.0.0.1", "9901->9901"}}, published); diff != "" {
		t.Errorf("published ports (-want +got)\n%s", diff)
	}

	// Every bind mount's source exists (compose would silently create a directory instead).
	mounts := map[string]string{} // target -> source
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			mounts[v.Target] = v.Source
			if fi, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			} else if fi.IsDir() {
				t.Errorf("%s mounts %s: a directory, want a file", name, v.Source)
			}
			if !v.ReadOnly {
				t.Errorf("%s mounts %s read-write, want :ro", name, v.Source)
			}
		}
	}
	// ... and the mounted files are this folder's, at the paths the commands read.
	mustMount := func(service, arg, source string) {
		t.Helper()
		target := ""
		for i, a := range p.Services[service].Command {
			if v, ok := strings.CutPrefix(a, arg+"="); ok {
				target = v
			} else if a == arg && i+1 < len(p.Services[service].Command) {
				target = p.Services[service].Command[i+1]
			}
		}
		if got, want := mounts[target], filepath.Join(repoRoot, source); got != want {
			t.Errorf("%s %s %s: mounted from %q, want %q", service, arg, target, got, want)
		}
	}
	mustMount("envoy", "-c", "envoy/envoy.yaml")
	mustMount("jwt-authz", "-config", "envoy/jwt-authz.yaml")
	mustMount("demo-issuer", "-users", "cmd/demo-issuer/users.yaml")

	// envoy.yaml's clusters name hosts on the compose network and the ports those services
	// listen on; jwt-authz.yaml's issuer and JWKS are the issuer service's.
	hosts := map[string]string{} // host name on the network -> service
	for name, s := range p.Services {
		hosts[name] = name
		for _, n := range s.Networks {
			if n != nil {
				for _, a := range n.Aliases {
					hosts[a] = name
				}
			}
		}
	}
	listens := map[string]string{
		"demo-issuer":   flagValue(p.Services["demo-issuer"].Command, "-addr"),
		"demo-upstream": flagValue(p.Services["demo-upstream"].Command, "-addr"),
		"jwt-authz":     readYAML(t, "jwt-authz.yaml")["grpc_address"].(string),
	}
	wantCluster := map[string]string{"authz": "jwt-authz", "issuer": "demo-issuer", "upstream": "demo-upstream"}
	clusters, _ := list(readYAML(t, "envoy.yaml"), "static_resources", "clusters")
	for _, c := range clusters {
		name, _ := dig(c, "name")
		eps, _ := list(c, "load_assignment", "endpoints")
		lbs, _ := list(eps[0], "lb_endpoints")
		sa, _ := dig(lbs[0], "endpoint", "address", "socket_address")
		host, _ := dig(sa, "address")
		port, _ := dig(sa, "port_value")
		svc := hosts[host.(string)]
		if svc != wantCluster[name.(string)] {
			t.Errorf("envoy.yaml cluster %v: host %v is service %q, want %q", name, host, svc, wantCluster[name.(string)])
			continue
		}
		if _, lport, _ := net.SplitHostPort(listens[svc]); lport != strconv.Itoa(port.(int)) {
			t.Errorf("envoy.yaml cluster %v: port %v, but %s listens on %q", name, port, svc, listens[svc])
		}
	}
	issuerURL := "http://demo-issuer:" + portOf(listens["demo-issuer"])
	if got := flagValue(p.Services["demo-issuer"].Command, "-issuer"); got != issuerURL {
		t.Errorf("demo-issuer -issuer = %q, want %q", got, issuerURL)
	}
}

func flagValue(cmd []string, name string) string {
	for i, a := range cmd {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(cmd) {
			return cmd[i+1]
		}
	}
	return ""
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

// TestDockerfile checks the Dockerfile's promises: the builder's Go is go.mod's, binaries are
// static (CGO_ENABLED=0) and the final stage is distroless static running as nonroot.
func TestDockerfile(t *testing.T) {
	stages := dockerStages(t, filepath.Join(repoRoot, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a builder and a final stage", len(stages))
	}
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	build := stages[0]
	if want := "golang:" + string(m[1]); build.from != want {
		t.Errorf("Dockerfile builder FROM %s, want %s (go.mod's go line)", build.from, want)
	}
	if !slices.ContainsFunc(build.lines, func(l string) bool { return strings.Contains(l, "CGO_ENABLED=0") }) {
		t.Error("Dockerfile builder does not set CGO_ENABLED=0: the distroless/static image has no libc")
	}
	for _, c := range commands {
		if !slices.ContainsFunc(build.lines, func(l string) bool { return strings.Contains(l, "./cmd/"+c) }) {
			t.Errorf("Dockerfile does not build ./cmd/%s", c)
		}
	}
	final := stages[len(stages)-1]
	if want := "gcr.io/distroless/static-debian12:nonroot"; final.from != want {
		t.Errorf("Dockerfile final FROM %s, want %s", final.from, want)
	}
	user := ""
	for _, l := range final.lines {
		if u, ok := strings.CutPrefix(l, "USER "); ok {
			user = strings.TrimSpace(u)
		}
	}
	if name, _, _ := strings.Cut(user, ":"); name != "nonroot" && name != "65532" {
		t.Errorf("Dockerfile final stage USER %q, want nonroot", user)
	}
	if !slices.ContainsFunc(final.lines, func(l string) bool {
		return strings.HasPrefix(l, "HEALTHCHECK ") && strings.Contains(l, "-healthcheck") && strings.Contains(l, "/readyz")
	}) {
		t.Error("Dockerfile final stage has no HEALTHCHECK running jwt-authz -healthcheck .../readyz")
	}
	if !slices.ContainsFunc(build.lines, func(l string) bool { return strings.Contains(l, "-X main.version=") }) {
		t.Error("Dockerfile does not stamp main.version: jwt-authz -version would say dev")
	}
}

type dockerStage struct {
	from  string   // the image
	lines []string // the instructions after FROM, continuation lines joined
}

func dockerStages(t *testing.T, path string) []dockerStage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []dockerStage
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || l == "" && cur.Len() == 0 {
			continue
		}
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		ins := cur.String()
		cur.Reset()
		if from, ok := strings.CutPrefix(ins, "FROM "); ok {
			image := strings.Fields(from)[0]
			stages = append(stages, dockerStage{from: image})
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, ins)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

// TestEnvoyVersion: the Envoy the tests run is the one the compose file ships and the one
// install-envoy.sh installs.
func TestEnvoyVersion(t *testing.T) {
	script, err := os.ReadFile("install-envoy.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), "ENVOY_VERSION:-"+envoyVersion+"}") {
		t.Errorf("install-envoy.sh does not default to Envoy %s", envoyVersion)
	}
	out, err := runEnvoy(t, "--version")
	if err != nil {
		t.Fatalf("envoy --version: %v\n%s", err, out)
	}
	if !strings.Contains(out, "/"+envoyVersion+"/") {
		t.Errorf("envoy --version = %q, want %s (docker-compose.yaml's envoy image)", out, envoyVersion)
	}
}
