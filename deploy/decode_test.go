package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1b1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is one decoded manifest document.
type object struct {
	Source string // file (and document index) it came from
	Kind   string
	Name   string
	// Namespace is metadata.namespace as written (empty for cluster-scoped objects).
	Namespace string
	// JSON is the document as the API server would receive it.
	JSON []byte
	// Typed is a pointer to the real API type, decoded strictly.
	Typed any
}

func (o object) key() string { return o.Kind + "/" + o.Namespace + "/" + o.Name }

// kinds are the Kubernetes-style API types the deployment files may contain, by apiVersion
// and kind. A kind that is not here fails the test: add its Go type, don't skip it. Istio's
// specs are protobuf messages and are decoded by istio_test.go with protojson.
var kinds = map[string]func() any{
	"v1/Namespace":                                     func() any { return new(corev1.Namespace) },
	"v1/ServiceAccount":                                func() any { return new(corev1.ServiceAccount) },
	"v1/ConfigMap":                                     func() any { return new(corev1.ConfigMap) },
	"v1/Service":                                       func() any { return new(corev1.Service) },
	"apps/v1/Deployment":                               func() any { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget":                    func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler":           func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/NetworkPolicy":               func() any { return new(networkingv1.NetworkPolicy) },
	"monitoring.coreos.com/v1/ServiceMonitor":          func() any { return new(monitoringv1.ServiceMonitor) },
	"gateway.networking.k8s.io/v1/HTTPRoute":           func() any { return new(gwapiv1.HTTPRoute) },
	"gateway.networking.k8s.io/v1beta1/ReferenceGrant": func() any { return new(gwapiv1b1.ReferenceGrant) },
	"gateway.envoyproxy.io/v1alpha1/SecurityPolicy":    func() any { return new(egv1a1.SecurityPolicy) },
}

// splitDocuments splits a YAML stream on "---" lines and drops documents that hold only
// comments or whitespace (helm renders those for disabled templates).
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if t := strings.TrimRight(line, " \t\r\n"); t == "---" || strings.HasPrefix(t, "--- ") {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

// decodeStrict decodes JSON the way the API server does: field names are case-sensitive,
// and unknown or duplicate fields are errors (plain encoding/json, and so
// sigs.k8s.io/yaml.UnmarshalStrict, would accept "Replicas" for "replicas").
func decodeStrict(data []byte, into any) error {
	strict, err := kjson.UnmarshalStrict(data, into, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// yamlToJSON converts one YAML document, refusing duplicate keys.
func yamlToJSON(doc []byte) ([]byte, error) {
	return yaml.YAMLToJSONStrict(doc)
}

// decodeDocuments decodes every document of a YAML stream into its API type.
func decodeDocuments(source string, data []byte) ([]object, error) {
	var objs []object
	var errs []error
	for i, doc := range splitDocuments(data) {
		src := fmt.Sprintf("%s#%d", source, i)
		o, err := decodeDocument(src, doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src, err))
			continue
		}
		objs = append(objs, o)
	}
	return objs, errors.Join(errs...)
}

func decodeDocument(src string, doc []byte) (object, error) {
	js, err := yamlToJSON(doc)
	if err != nil {
		return object{}, err
	}
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
	}
	// Not strict: only the header is read here; the typed decode below is strict.
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &head); err != nil {
		return object{}, err
	}
	gvk := head.APIVersion + "/" + head.Kind
	newType, ok := kinds[gvk]
	if !ok {
		return object{}, fmt.Errorf("apiVersion %q kind %q: not a kind these tests know (add it to kinds)", head.APIVersion, head.Kind)
	}
	if head.Metadata.Name == "" {
		return object{}, fmt.Errorf("%s: metadata.name is empty", gvk)
	}
	o := object{Source: src, Kind: head.Kind, Name: head.Metadata.Name, Namespace: head.Metadata.Namespace, JSON: js, Typed: newType()}
	if err := decodeStrict(js, o.Typed); err != nil {
		return object{}, fmt.Errorf("%s %s: %w", gvk, o.Name, err)
	}
	return o, nil
}

// decodeFile reads and decodes one manifest file.
func decodeFile(t *testing.T, path string) []object {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeDocuments(filepath.ToSlash(path), data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// manifests is a set of decoded objects with typed look-ups.
type manifests []object

// one returns the only object of a kind, failing the test unless there is exactly one.
func one[T any](t *testing.T, m manifests) *T {
	t.Helper()
	var found []*T
	for _, o := range m {
		if v, ok := o.Typed.(*T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, found %d", zero, len(found))
	}
	return found[0]
}

// all returns every object of a kind.
func all[T any](m manifests) []*T {
	var found []*T
	for _, o := range m {
		if v, ok := o.Typed.(*T); ok {
			found = append(found, v)
		}
	}
	return found
}
