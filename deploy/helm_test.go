package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const chartDir = "helm/jwt-authz"

// renderChart renders the chart as "helm template NAME deploy/helm/jwt-authz -n NAMESPACE"
// with the given values over values.yaml: values are coalesced and checked against
// values.schema.json as "helm install" does, and the engine is strict (a template that reads
// a value that does not exist fails, as with "helm lint --strict").
func renderChart(t *testing.T, release, namespace string, vals map[string]any) (manifests, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Validate(); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	top, err := chartutil.ToRenderValues(ch, vals,
		chartutil.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true},
		chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return nil, err
	}
	var m manifests
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		objs, err := decodeDocuments(name, []byte(files[name]))
		if err != nil {
			t.Fatalf("rendered chart: %v", err)
		}
		m = append(m, objs...)
	}
	return m, nil
}

func mustRender(t *testing.T, release, namespace string, vals map[string]any) manifests {
	t.Helper()
	m, err := renderChart(t, release, namespace, vals)
	if err != nil {
		t.Fatalf("render(%s, %s, %v): %v", release, namespace, vals, err)
	}
	return m
}

// helmOnlyLabels are the labels Helm's conventions add that a kustomize base has no reason
// to carry; app.kubernetes.io/managed-by says who applied the object and differs by design.
var helmOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by"}

// byKey turns objects into comparable generic documents, keyed by kind/namespace/name. Each
// typed object is re-encoded first, so spellings that decode to the same value compare equal
// ("1" and 1 for a CPU quantity, a named or numbered port written either way). normalize, if
// set, edits each document before it is stored.
func byKey(t *testing.T, m manifests, normalize func(map[string]any)) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, o := range m {
		js, err := json.Marshal(o.Typed)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(js, &doc); err != nil {
			t.Fatal(err)
		}
		// The config file is compared as data, not text: comments and key order differ
		// between the hand-written ConfigMap and toYaml.
		if o.Kind == "ConfigMap" {
			data, _ := doc["data"].(map[string]any)
			for k, v := range data {
				var parsed any
				if err := yaml.Unmarshal([]byte(v.(string)), &parsed); err != nil {
					t.Fatalf("%s data %s: %v", o.key(), k, err)
				}
				data[k] = parsed
			}
		}
		if normalize != nil {
			normalize(doc)
		}
		if _, dup := out[o.key()]; dup {
			t.Errorf("%s appears twice", o.key())
		}
		out[o.key()] = doc
	}
	return out
}

func dropHelmLabels(doc map[string]any) {
	md, _ := doc["metadata"].(map[string]any)
	l, _ := md["labels"].(map[string]any)
	for _, k := range helmOnlyLabels {
		delete(l, k)
	}
}

// TestHelmMatchesKustomize: with default values the chart renders what kubectl apply -k
// applies, object for object and field for field, except for
//   - the Namespace, which the base creates and a chart must not ("helm install
//     --create-namespace" does);
//   - the labels in helmOnlyLabels.
func TestHelmMatchesKustomize(t *testing.T) {
	base := loadKustomize(t)
	ns := one[corev1.Namespace](t, base)
	var want manifests
	for _, o := range base {
		if o.Kind != "Namespace" {
			want = append(want, o)
		}
	}
	got := mustRender(t, "jwt-authz", ns.Name, nil)
	if diff := cmp.Diff(byKey(t, want, dropHelmLabels), byKey(t, got, dropHelmLabels)); diff != "" {
		t.Errorf("kustomize base vs helm template with default values (-kustomize +helm):\n%s", diff)
	}
	// The normalisation must not hide a missing chart label.
	for _, o := range got {
		var md struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(o.JSON, &md); err != nil {
			t.Fatal(err)
		}
		if md.Metadata.Labels["app.kubernetes.io/managed-by"] != "Helm" || md.Metadata.Labels["helm.sh/chart"] != "jwt-authz-0.1.0" {
			t.Errorf("%s labels %v, want managed-by Helm and helm.sh/chart", o.key(), md.Metadata.Labels)
		}
	}
}

// TestHelmValues renders the chart with values an operator would change and holds every
// rendering to the same promises as the base.
func TestHelmValues(t *testing.T) {
	tests := []struct {
		name, release, namespace string
		vals                     map[string]any
		check                    func(t *testing.T, m manifests)
	}{
		{name: "defaults", release: "jwt-authz", namespace: "jwt-authz"},
		{
			name: "other release and namespace", release: "edge", namespace: "auth",
			check: func(t *testing.T, m manifests) {
				if d := one[appsv1.Deployment](t, m); d.Name != "edge-jwt-authz" || d.Namespace != "auth" {
					t.Errorf("Deployment %s/%s, want auth/edge-jwt-authz", d.Namespace, d.Name)
				}
			},
		},
		{
			name: "no autoscaler", release: "jwt-authz", namespace: "jwt-authz",
			vals: map[string]any{"autoscaling": map[string]any{"enabled": false}, "replicaCount": 3},
			check: func(t *testing.T, m manifests) {
				if r := one[appsv1.Deployment](t, m).Spec.Replicas; r == nil || *r != 3 {
					t.Errorf("replicas = %v, want 3", r)
				}
			},
		},
		{
			name: "image tag, ports, config", release: "jwt-authz", namespace: "jwt-authz",
			vals: map[string]any{
				"image": map[string]any{"tag": "0.2.0"},
				"ports": map[string]any{"grpc": 9101, "http": 9102},
				"config": map[string]any{
					"grpc_address": "0.0.0.0:9101", "http_address": "0.0.0.0:9102",
					"shutdown_delay": "10s",
					// Large integers come through Helm's values as float64: they must still
					// render as integers the server accepts.
					"cache": map[string]any{"max_bytes": float64(128 << 20)},
				},
				"terminationGracePeriodSeconds": 30,
			},
			check: func(t *testing.T, m manifests) {
				if img := one[appsv1.Deployment](t, m).Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/jwt-authz/jwt-authz:0.2.0" {
					t.Errorf("image = %q", img)
				}
				runCheck(t, configFile(t, m))
			},
		},
		{
			name: "service monitor", release: "jwt-authz", namespace: "jwt-authz",
			vals: map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prom"}}},
			check: func(t *testing.T, m manifests) {
				checkServiceMonitor(t, m)
				if sm := one[monitoringv1.ServiceMonitor](t, m); sm.Labels["release"] != "prom" {
					t.Errorf("ServiceMonitor labels %v, want release=prom", sm.Labels)
				}
			},
		},
		{
			name: "no network policy, no budget", release: "jwt-authz", namespace: "jwt-authz",
			vals: map[string]any{"networkPolicy": map[string]any{"enabled": false}, "podDisruptionBudget": map[string]any{"enabled": false}},
			check: func(t *testing.T, m manifests) {
				for _, o := range m {
					if o.Kind == "NetworkPolicy" || o.Kind == "PodDisruptionBudget" {
						t.Errorf("%s rendered although disabled", o.key())
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustRender(t, tt.release, tt.namespace, tt.vals)
			checkWorkload(t, m)
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

// TestHelmRefuses: values that would deploy something broken fail the render.
func TestHelmRefuses(t *testing.T) {
	tests := []struct {
		name    string
		vals    map[string]any
		wantErr string
	}{
		{
			name:    "config port differs from the declared port",
			vals:    map[string]any{"config": map[string]any{"grpc_address": "0.0.0.0:9500"}},
			wantErr: "config.grpc_address",
		},
		{
			name:    "HTTP listener off (probes and metrics need it)",
			vals:    map[string]any{"config": map[string]any{"http_address": ""}},
			wantErr: "http_address",
		},
		{
			name:    "unknown value (a typo)",
			vals:    map[string]any{"autoscalling": map[string]any{"enabled": false}},
			wantErr: "autoscalling",
		},
		{
			name:    "port out of range",
			vals:    map[string]any{"ports": map[string]any{"grpc": 70000}},
			wantErr: "ports",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderChart(t, "jwt-authz", "jwt-authz", tt.vals)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("render(%v) = %v, want an error mentioning %q", tt.vals, err, tt.wantErr)
			}
		})
	}
}

// checkServiceMonitor: the ServiceMonitor scrapes the Service's metrics port.
func checkServiceMonitor(t *testing.T, m manifests) {
	t.Helper()
	sm := one[monitoringv1.ServiceMonitor](t, m)
	svc := one[corev1.Service](t, m)
	s, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || s.Empty() || !s.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select Service labels %v", sm.Spec.Selector, svc.Labels)
	}
	if sm.Namespace != svc.Namespace {
		t.Errorf("ServiceMonitor in %q, Service in %q", sm.Namespace, svc.Namespace)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != httpPortName || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %s, want port %s path /metrics", fmt.Sprint(sm.Spec.Endpoints), httpPortName)
	}
}
