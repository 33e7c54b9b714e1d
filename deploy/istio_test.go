package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityclient "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	istioDir     = "istio"
	providerName = "jwt-authz"
	// maxCheckTimeout bounds the provider timeout: it is how long a user waits when
	// jwt-authz is slow or unreachable before getting statusOnError.
	maxCheckTimeout = 5 * time.Second
)

// strictProto decodes Istio's protobuf-backed specs: unknown fields are errors. Istio's own Go
// client (istio.io/client-go) decodes specs with AllowUnknownFields, so a misplaced field
// (say includeRequestHeadersInCheck on the gRPC provider, where it does not exist) would pass
// it silently and be dropped by istiod.
var strictProto = protojson.UnmarshalOptions{DiscardUnknown: false}

func readJSON(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if docs := splitDocuments(data); len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", path, len(docs))
	}
	js, err := yamlToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return js
}

// meshConfigs decodes the meshConfig of both ways of installing the provider: the
// IstioOperator overlay for istioctl and the istiod chart values.
func meshConfigs(t *testing.T) map[string]*meshv1alpha1.MeshConfig {
	t.Helper()
	var op struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Spec       struct {
			MeshConfig json.RawMessage `json:"meshConfig"`
		} `json:"spec"`
	}
	opFile := filepath.Join(istioDir, "extension-provider.yaml")
	if err := decodeStrict(readJSON(t, opFile), &op); err != nil {
		t.Fatalf("%s: %v", opFile, err)
	}
	if op.APIVersion != "install.istio.io/v1alpha1" || op.Kind != "IstioOperator" {
		t.Errorf("%s: apiVersion %q kind %q, want install.istio.io/v1alpha1 IstioOperator", opFile, op.APIVersion, op.Kind)
	}
	var values struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	valuesFile := filepath.Join(istioDir, "istiod-values.yaml")
	if err := decodeStrict(readJSON(t, valuesFile), &values); err != nil {
		t.Fatalf("%s: %v", valuesFile, err)
	}
	out := map[string]*meshv1alpha1.MeshConfig{}
	for file, raw := range map[string]json.RawMessage{opFile: op.Spec.MeshConfig, valuesFile: values.MeshConfig} {
		mc := new(meshv1alpha1.MeshConfig)
		if err := strictProto.Unmarshal(raw, mc); err != nil {
			t.Fatalf("%s: meshConfig: %v", file, err)
		}
		out[file] = mc
	}
	return out
}

// TestIstioExtensionProvider: the provider points at the Service's gRPC port, with an
// explicit timeout (Istio's default is 600s), fail-closed, and 503 on error.
func TestIstioExtensionProvider(t *testing.T) {
	base := loadKustomize(t)
	svc := one[corev1.Service](t, base)
	var grpcPort int32
	for _, p := range svc.Spec.Ports {
		if p.Name == grpcPortName {
			grpcPort = p.Port
		}
	}
	mcs := meshConfigs(t)
	var first *meshv1alpha1.MeshConfig
	for file, mc := range mcs {
		if first == nil {
			first = mc
		} else if !proto.Equal(first, mc) {
			t.Errorf("the meshConfigs of %s differ", strings.Join(slices.Sorted(maps.Keys(mcs)), " and "))
		}
		var p *meshv1alpha1.MeshConfig_ExtensionProvider
		for _, e := range mc.GetExtensionProviders() {
			if e.GetName() == providerName {
				p = e
			}
		}
		g := p.GetEnvoyExtAuthzGrpc()
		if g == nil {
			t.Errorf("%s: no envoyExtAuthzGrpc provider named %q", file, providerName)
			continue
		}
		if want := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace); g.GetService() != want {
			t.Errorf("%s: service %q, want %q", file, g.GetService(), want)
		}
		if g.GetPort() != uint32(grpcPort) {
			t.Errorf("%s: port %d, want the Service's gRPC port %d", file, g.GetPort(), grpcPort)
		}
		if d := g.GetTimeout().AsDuration(); g.GetTimeout() == nil || d <= 0 || d > maxCheckTimeout {
			t.Errorf("%s: timeout %v, want explicit, > 0 and <= %v (Istio's default is 600s)", file, g.GetTimeout(), maxCheckTimeout)
		}
		if g.GetFailOpen() {
			t.Errorf("%s: failOpen true: an outage of jwt-authz would let every request through", file)
		}
		if g.GetStatusOnError() != "503" {
			t.Errorf("%s: statusOnError %q, want \"503\"", file, g.GetStatusOnError())
		}
		if g.GetClearRouteCache() {
			t.Errorf("%s: clearRouteCache true: headers set by jwt-authz could re-route a request after the check", file)
		}
	}
}

// TestIstioProviderIsStrict keeps the test above honest: a field that exists only on the
// HTTP provider is refused on the gRPC one.
func TestIstioProviderIsStrict(t *testing.T) {
	bad := `{"extensionProviders":[{"name":"x","envoyExtAuthzGrpc":{"service":"s","port":9001,"includeRequestHeadersInCheck":["authorization"]}}]}`
	if err := strictProto.Unmarshal([]byte(bad), new(meshv1alpha1.MeshConfig)); err == nil {
		t.Errorf("protojson accepted includeRequestHeadersInCheck on envoyExtAuthzGrpc")
	}
}

// istioObject is the envelope of an Istio custom resource; its spec is a protobuf message.
type istioObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
}

func TestAuthorizationPolicy(t *testing.T) {
	file := filepath.Join(istioDir, "authorizationpolicy.yaml")
	js := readJSON(t, file)
	var obj istioObject
	if err := decodeStrict(js, &obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if want := securityclient.SchemeGroupVersion.String(); obj.APIVersion != want || obj.Kind != "AuthorizationPolicy" {
		t.Errorf("%s: apiVersion %q kind %q, want %s AuthorizationPolicy", file, obj.APIVersion, obj.Kind, want)
	}
	spec := new(securityv1beta1.AuthorizationPolicy)
	if err := strictProto.Unmarshal(obj.Spec, spec); err != nil {
		t.Fatalf("%s: spec: %v", file, err)
	}
	// What a Go client (and so istiod's informer) reads must be the same policy.
	var typed securityclient.AuthorizationPolicy
	if err := json.Unmarshal(js, &typed); err != nil {
		t.Fatalf("%s: istio.io/client-go: %v", file, err)
	}
	if !proto.Equal(&typed.Spec, spec) {
		t.Errorf("%s: istio.io/client-go reads a different spec", file)
	}

	if spec.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM || spec.GetProvider().GetName() != providerName {
		t.Errorf("action %v provider %q, want CUSTOM %q (the meshConfig extension provider)", spec.GetAction(), spec.GetProvider().GetName(), providerName)
	}
	if got := spec.GetSelector().GetMatchLabels(); len(got) != 1 || got["app"] != "api" {
		t.Errorf("selector %v, want app=api", got)
	}

	// Which requests go to jwt-authz: everything but POST /login.
	tests := []struct {
		method, path string
		checked      bool
	}{
		{"POST", "/login", false},
		{"GET", "/login", true},
		{"POST", "/login/", true},
		{"POST", "/LOGIN", true},
		{"POST", "/login-admin", true},
		{"GET", "/api/things", true},
		{"GET", "/", true},
		{"DELETE", "/api/things/1", true},
	}
	for _, tt := range tests {
		got, err := sentToProvider(spec, tt.method, tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.checked {
			t.Errorf("%s %s checked by jwt-authz = %v, want %v", tt.method, tt.path, got, tt.checked)
		}
	}
}

// sentToProvider evaluates a CUSTOM policy's rules the way Istio does for the fields used
// here: a request goes to the provider if any rule matches; a rule's "to" operations are
// ORed; an operation's fields are ANDed; a field matches if any value does (notX: none).
func sentToProvider(p *securityv1beta1.AuthorizationPolicy, method, path string) (bool, error) {
	for i, r := range p.GetRules() {
		if len(r.GetFrom()) > 0 || len(r.GetWhen()) > 0 || len(r.GetTo()) == 0 {
			return false, fmt.Errorf("rules[%d]: the evaluator handles rules with only \"to\"", i)
		}
		for j, to := range r.GetTo() {
			op := to.GetOperation()
			if len(op.GetHosts())+len(op.GetNotHosts())+len(op.GetPorts())+len(op.GetNotPorts()) > 0 {
				return false, fmt.Errorf("rules[%d].to[%d]: the evaluator handles paths and methods only", i, j)
			}
			if anyMatch(op.GetPaths(), path, true) && !anyMatch(op.GetNotPaths(), path, false) &&
				anyMatch(op.GetMethods(), method, true) && !anyMatch(op.GetNotMethods(), method, false) {
				return true, nil
			}
		}
	}
	return false, nil
}

// anyMatch applies Istio's string match: exact, "prefix*", "*suffix" or "*". An empty list
// is ifEmpty (no constraint).
func anyMatch(patterns []string, v string, ifEmpty bool) bool {
	if len(patterns) == 0 {
		return ifEmpty
	}
	for _, p := range patterns {
		switch {
		case p == "*":
			return true
		case strings.HasSuffix(p, "*") && strings.HasPrefix(v, strings.TrimSuffix(p, "*")):
			return true
		case strings.HasPrefix(p, "*") && strings.HasSuffix(v, strings.TrimPrefix(p, "*")):
			return true
		case p == v:
			return true
		}
	}
	return false
}

// TestNoRequestAuthentication: jwt-authz verifies tokens; a RequestAuthentication next to it
// would verify them again with other keys and settings.
func TestNoRequestAuthentication(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(istioDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in %s (%v)", istioDir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range splitDocuments(data) {
			js, err := yamlToJSON(doc)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var head metav1.TypeMeta
			if err := json.Unmarshal(js, &head); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if head.Kind == "RequestAuthentication" {
				t.Errorf("%s: a RequestAuthentication", f)
			}
		}
	}
}
