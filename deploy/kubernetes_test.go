package deploy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	kustomizeDir = "kubernetes"
	configKey    = "jwt-authz.yaml"
	// defaultShutdownTimeout mirrors config.DefaultShutdownTimeout in the server module.
	defaultShutdownTimeout = 10 * time.Second
	// shutdownMargin is what terminationGracePeriodSeconds must leave after shutdown_delay
	// and shutdown_timeout: the HTTP listener's own 2s shutdown, stopping key sources, and
	// the kubelet's timing.
	shutdownMargin = 5 * time.Second
	// probePort is the container port name the probes and the metrics port use.
	httpPortName = "http-metrics"
	grpcPortName = "grpc"
)

// loadKustomize reads kustomization.yaml and its resources the way "kubectl apply -k" does
// for a base without generators or transformers. The kustomization is decoded strictly into
// exactly that shape: a transformer added later fails here until this loader (or
// TestKustomizeMatchesKubectl, which renders with kubectl's kustomize) covers it.
func loadKustomize(t *testing.T) manifests {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(kustomizeDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yamlToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := decodeStrict(js, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v (this test loads plain resources only)", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: apiVersion %q kind %q", k.APIVersion, k.Kind)
	}
	var m manifests
	for _, r := range k.Resources {
		m = append(m, decodeFile(t, filepath.Join(kustomizeDir, r))...)
	}
	return m
}

// TestKustomizeResources: every manifest in the directory is either in the kustomization or
// is the optional ServiceMonitor, and every one decodes strictly.
func TestKustomizeResources(t *testing.T) {
	m := loadKustomize(t)
	var got []string
	for _, o := range m {
		got = append(got, o.Kind)
	}
	want := []string{"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service",
		"PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kustomization resources, by kind (-want +got):\n%s", diff)
	}
	files, err := filepath.Glob(filepath.Join(kustomizeDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		objs := decodeFile(t, f)
		if filepath.Base(f) == "servicemonitor.yaml" {
			if len(objs) != 1 || objs[0].Kind != "ServiceMonitor" {
				t.Errorf("%s: want one ServiceMonitor", f)
			}
			checkServiceMonitor(t, append(slices.Clone(m), objs...))
		}
	}
	if one[corev1.Namespace](t, m).Name != one[appsv1.Deployment](t, m).Namespace {
		t.Errorf("the Namespace object is not the Deployment's namespace")
	}
}

// TestKustomizeMatchesKubectl renders the base with the kustomize built into kubectl, where
// kubectl is installed, and checks it yields the objects loadKustomize reads.
func TestKustomizeMatchesKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: loadKustomize alone stands for kubectl apply -k")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectl, "kustomize", kustomizeDir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", kustomizeDir, err)
	}
	rendered, err := decodeDocuments("kubectl kustomize", out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(byKey(t, loadKustomize(t), nil), byKey(t, rendered, nil)); diff != "" {
		t.Errorf("files vs kubectl kustomize (-files +kubectl):\n%s", diff)
	}
}

func TestKustomizeWorkload(t *testing.T) {
	checkWorkload(t, loadKustomize(t))
}

// serverConfig is what the manifests must agree with in the jwt-authz config file; the rest
// of the file is the server's business (config_test.go runs jwt-authz -check on it).
type serverConfig struct {
	GRPCAddress     string `json:"grpc_address"`
	HTTPAddress     string `json:"http_address"`
	ShutdownDelay   string `json:"shutdown_delay"`
	ShutdownTimeout string `json:"shutdown_timeout"`
}

func configFile(t *testing.T, m manifests) string {
	t.Helper()
	cm := one[corev1.ConfigMap](t, m)
	f, ok := cm.Data[configKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Name, configKey)
	}
	return f
}

func parseServerConfig(t *testing.T, m manifests) serverConfig {
	t.Helper()
	var c serverConfig
	if err := yaml.Unmarshal([]byte(configFile(t, m)), &c); err != nil {
		t.Fatalf("ConfigMap %s: %v", configKey, err)
	}
	return c
}

func duration(t *testing.T, field, s string, def time.Duration) time.Duration {
	t.Helper()
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %v", field, err)
	}
	return d
}

func addressPort(t *testing.T, field, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", field, addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("%s %q: %v", field, addr, err)
	}
	return int32(n)
}

// checkWorkload holds the promises of the issue for any rendering of the manifests (the
// kustomize base, the chart with defaults, the chart with overrides).
func checkWorkload(t *testing.T, m manifests) {
	dep := one[appsv1.Deployment](t, m)
	cfg := parseServerConfig(t, m)
	pod := dep.Spec.Template
	podLabels := labels.Set(pod.Labels)

	// Every namespaced object lives with the Deployment.
	for _, o := range m {
		if o.Kind != "Namespace" && o.Namespace != dep.Namespace {
			t.Errorf("%s: namespace %q, want %q (the Deployment's)", o.key(), o.Namespace, dep.Namespace)
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(podLabels) {
		t.Errorf("Deployment selector %v does not select its pod labels %v (%v)", dep.Spec.Selector, pod.Labels, err)
	}

	// Replicas: the autoscaler's minimum when there is one, else the Deployment's.
	hpas := all[autoscalingv2.HorizontalPodAutoscaler](m)
	switch {
	case len(hpas) == 1:
		h := hpas[0]
		if dep.Spec.Replicas != nil {
			t.Errorf("Deployment sets replicas (%d) although a HorizontalPodAutoscaler owns the count", *dep.Spec.Replicas)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("HorizontalPodAutoscaler min/max replicas = %v/%d, want min >= 2 <= max", h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != dep.Name {
			t.Errorf("HorizontalPodAutoscaler targets %+v, want the Deployment %s", ref, dep.Name)
		}
		if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU ||
			h.Spec.Metrics[0].Resource.Target.AverageUtilization == nil {
			t.Errorf("HorizontalPodAutoscaler metrics = %+v, want CPU utilization", h.Spec.Metrics)
		}
	case len(hpas) == 0:
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
			t.Errorf("Deployment replicas = %v without an autoscaler, want >= 2", dep.Spec.Replicas)
		}
	default:
		t.Errorf("%d HorizontalPodAutoscalers", len(hpas))
	}
	if s := dep.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v, want maxUnavailable 0 (a rollout never lowers capacity)", s)
	}

	// Pod-level hardening and identity.
	ps := pod.Spec
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Errorf("pod automountServiceAccountToken = %v, want false", ps.AutomountServiceAccountToken)
	}
	sa := one[corev1.ServiceAccount](t, m)
	if ps.ServiceAccountName != sa.Name {
		t.Errorf("pod serviceAccountName = %q, want %q", ps.ServiceAccountName, sa.Name)
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount automountServiceAccountToken = %v, want false", sa.AutomountServiceAccountToken)
	}
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and a non-zero runAsUser", psc)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccompProfile, want RuntimeDefault")
	}

	// Graceful shutdown fits in the grace period.
	delay := duration(t, "shutdown_delay", cfg.ShutdownDelay, 0)
	timeout := duration(t, "shutdown_timeout", cfg.ShutdownTimeout, defaultShutdownTimeout)
	grace := time.Duration(ptrValue(ps.TerminationGracePeriodSeconds, 30)) * time.Second
	if grace < delay+timeout+shutdownMargin {
		t.Errorf("terminationGracePeriodSeconds = %v, want >= shutdown_delay %v + shutdown_timeout %v + %v", grace, delay, timeout, shutdownMargin)
	}
	if delay == 0 {
		t.Errorf("shutdown_delay is 0: proxies would still send to a pod that stopped answering")
	}

	// Spread over nodes: a hard per-node constraint selecting these pods.
	spread := false
	for _, c := range ps.TopologySpreadConstraints {
		s, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err == nil && !s.Empty() && s.Matches(podLabels) && c.TopologyKey == "kubernetes.io/hostname" &&
			c.WhenUnsatisfiable == corev1.DoNotSchedule && c.MaxSkew == 1 {
			spread = true
		}
	}
	if !spread {
		t.Errorf("no topologySpreadConstraint keeps replicas on separate nodes (hostname, maxSkew 1, DoNotSchedule, selecting the pods)")
	}

	// The container.
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	checkMemoryLimit(t, c, configFile(t, m))
	if !regexp.MustCompile(`^ghcr\.io/jwt-authz/jwt-authz:[0-9][0-9A-Za-z.+-]*$`).MatchString(c.Image) {
		t.Errorf("image %q, want ghcr.io/jwt-authz/jwt-authz:<version>", c.Image)
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("container has no securityContext")
	default:
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("readOnlyRootFilesystem = %v, want true", sc.ReadOnlyRootFilesystem)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("allowPrivilegeEscalation = %v, want false", sc.AllowPrivilegeEscalation)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("privileged = true")
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("capabilities = %+v, want drop [ALL] and no add", sc.Capabilities)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim || req.IsZero() || lim.Cmp(req) < 0 {
			t.Errorf("resources %s: request %v, limit %v; want both, limit >= request", r, req.String(), lim.String())
		}
	}

	// Ports: the config's listeners, by the names the probes and the Service use.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
		if p.Protocol != corev1.ProtocolTCP {
			t.Errorf("container port %s protocol %q, want TCP", p.Name, p.Protocol)
		}
	}
	if got, want := ports[grpcPortName], addressPort(t, "grpc_address", cfg.GRPCAddress); got != want {
		t.Errorf("container port %q = %d, want %d (config grpc_address %s)", grpcPortName, got, want, cfg.GRPCAddress)
	}
	if got, want := ports[httpPortName], addressPort(t, "http_address", cfg.HTTPAddress); got != want {
		t.Errorf("container port %q = %d, want %d (config http_address %s)", httpPortName, got, want, cfg.HTTPAddress)
	}
	resolve := func(p intstr.IntOrString) int32 {
		if p.Type == intstr.String {
			return ports[p.StrVal]
		}
		return p.IntVal
	}
	for name, pr := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		switch {
		case pr == nil || pr.HTTPGet == nil:
			t.Errorf("probe for %s: want an httpGet probe", name)
		case pr.HTTPGet.Path != name || resolve(pr.HTTPGet.Port) != ports[httpPortName]:
			t.Errorf("probe %s:%s, want %s on the HTTP port %d", pr.HTTPGet.Path, pr.HTTPGet.Port.String(), name, ports[httpPortName])
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path == "/readyz" {
		t.Errorf("liveness on /readyz would restart pods during a JWKS outage")
	}

	// The config: mounted as a directory (a subPath mount never sees ConfigMap updates, so
	// hot reload would silently stop working), read from where the args say.
	cm := one[corev1.ConfigMap](t, m)
	var mount *corev1.VolumeMount
	for _, v := range ps.Volumes {
		if v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
			continue
		}
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].Name == v.Name {
				mount = &c.VolumeMounts[i]
			}
		}
	}
	if mount == nil {
		t.Fatalf("ConfigMap %s is not mounted", cm.Name)
	}
	if mount.SubPath != "" || mount.SubPathExpr != "" {
		t.Errorf("ConfigMap mounted with subPath: updates never reach the pod")
	}
	if !mount.ReadOnly {
		t.Errorf("config mount is writable")
	}
	args := strings.Join(c.Args, " ")
	if want := "-config " + path.Join(mount.MountPath, configKey); args != want {
		t.Errorf("args %q, want %q", args, want)
	}

	// The Service: HTTP/2 gRPC port for the mesh, a named metrics port.
	svc := one[corev1.Service](t, m)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the pods", svc.Spec.Selector)
	}
	svcPorts := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = p
	}
	g, ok := svcPorts[grpcPortName]
	if !ok || g.AppProtocol == nil || *g.AppProtocol != "grpc" || resolve(g.TargetPort) != ports[grpcPortName] {
		t.Errorf("Service port %q: appProtocol %q to port %s, want appProtocol grpc to the container's gRPC port (istio/istio#50881)",
			grpcPortName, ptrValue(g.AppProtocol, ""), g.TargetPort.String())
	}
	if h, ok := svcPorts[httpPortName]; !ok || resolve(h.TargetPort) != ports[httpPortName] {
		t.Errorf("Service port %q to port %s, want the container's HTTP port", httpPortName, h.TargetPort.String())
	}

	// Disruption budget: a drain keeps at least one of the minimum replicas.
	for _, pdb := range all[policyv1.PodDisruptionBudget](m) {
		s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			t.Errorf("PodDisruptionBudget selector does not select the pods")
		}
		if u := pdb.Spec.MaxUnavailable; u == nil || u.Type != intstr.Int || u.IntVal != 1 || pdb.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget maxUnavailable = %v minAvailable = %v, want maxUnavailable 1", u, pdb.Spec.MinAvailable)
		}
	}

	for _, np := range all[networkingv1.NetworkPolicy](m) {
		checkNetworkPolicy(t, np, podLabels, ports)
	}
}

// checkNetworkPolicy: ingress only to the two ports, each from named peers (a rule without
// "from", or a peer with empty selectors, would admit everyone).
func checkNetworkPolicy(t *testing.T, np *networkingv1.NetworkPolicy, podLabels labels.Set, ports map[string]int32) {
	s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || s.Empty() || !s.Matches(podLabels) {
		t.Errorf("NetworkPolicy podSelector does not select the pods")
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("NetworkPolicy policyTypes %v, want Ingress", np.Spec.PolicyTypes)
	}
	seen := map[string]bool{}
	for i, r := range np.Spec.Ingress {
		if len(r.From) == 0 || len(r.Ports) == 0 {
			t.Errorf("ingress[%d] admits any peer or any port", i)
		}
		for _, p := range r.Ports {
			if p.Port == nil || p.Port.Type != intstr.String || ports[p.Port.StrVal] == 0 {
				t.Errorf("ingress[%d] port %v, want a named container port", i, p.Port)
				continue
			}
			seen[p.Port.StrVal] = true
		}
		for j, peer := range r.From {
			for _, ls := range []*metav1.LabelSelector{peer.NamespaceSelector, peer.PodSelector} {
				if _, err := metav1.LabelSelectorAsSelector(ls); err != nil {
					t.Errorf("ingress[%d].from[%d]: %v", i, j, err)
				}
			}
			if peer.IPBlock != nil || (peer.NamespaceSelector == nil && peer.PodSelector == nil) ||
				(peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels)+len(peer.NamespaceSelector.MatchExpressions) == 0) {
				t.Errorf("ingress[%d].from[%d] = %+v: want a non-empty namespace selector", i, j, peer)
			}
		}
	}
	if !seen[grpcPortName] || !seen[httpPortName] {
		t.Errorf("NetworkPolicy admits ports %v, want %s and %s", seen, grpcPortName, httpPortName)
	}
}

func ptrValue[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// TestDockerfileBinary: the container command is where the image puts the binary.
func TestDockerfileBinary(t *testing.T) {
	df, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if os.IsNotExist(err) {
		t.Skip("no ../Dockerfile")
	}
	if err != nil {
		t.Fatal(err)
	}
	dep := one[appsv1.Deployment](t, loadKustomize(t))
	bin := dep.Spec.Template.Spec.Containers[0].Command
	if len(bin) != 1 {
		t.Fatalf("command %q, want the binary alone", bin)
	}
	var last string
	for _, line := range strings.Split(string(df), "\n") {
		if f := strings.Fields(line); len(f) > 0 && (strings.EqualFold(f[0], "CMD") || strings.EqualFold(f[0], "ENTRYPOINT")) {
			last = line
		}
	}
	if !strings.Contains(last, fmt.Sprintf("%q", bin[0])) {
		t.Errorf("Deployment command %q, but the Dockerfile runs %q", bin[0], last)
	}
}
