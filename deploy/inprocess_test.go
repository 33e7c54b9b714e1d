package deploy

import (
	"os"
	"strings"
	"testing"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
)

// The kinds of docs/in-process.md's Envoy Gateway example.
func init() {
	kinds["gateway.envoyproxy.io/v1alpha1/EnvoyProxy"] = func() any { return new(egv1a1.EnvoyProxy) }
	kinds["gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy"] = func() any { return new(egv1a1.EnvoyExtensionPolicy) }
}

// TestInProcessDocs decodes the Envoy Gateway example of docs/in-process.md strictly with
// Envoy Gateway's own API types, and checks that the policy loads the module the EnvoyProxy
// registers, with the filter name and the config (a JSON string: the config file's path)
// the module reads.
func TestInProcessDocs(t *testing.T) {
	const doc = "../docs/in-process.md"
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, part := range strings.Split(string(data), "```yaml\n")[1:] {
		text, _, _ := strings.Cut(part, "```")
		if strings.HasPrefix(text, "# envoy gateway") {
			block = text
		}
	}
	if block == "" {
		t.Fatalf("%s: no yaml block starting with \"# envoy gateway\"", doc)
	}
	objs, err := decodeDocuments(doc, []byte(block))
	if err != nil {
		t.Fatal(err)
	}
	var proxy *egv1a1.EnvoyProxy
	var policy *egv1a1.EnvoyExtensionPolicy
	for _, o := range objs {
		switch v := o.Typed.(type) {
		case *egv1a1.EnvoyProxy:
			proxy = v
		case *egv1a1.EnvoyExtensionPolicy:
			policy = v
		}
	}
	if proxy == nil || policy == nil {
		t.Fatalf("%s: want an EnvoyProxy and an EnvoyExtensionPolicy, got %d objects", doc, len(objs))
	}
	if len(proxy.Spec.DynamicModules) != 1 || len(policy.Spec.DynamicModule) != 1 {
		t.Fatalf("%s: want one registered module and one module filter", doc)
	}
	reg, use := proxy.Spec.DynamicModules[0], policy.Spec.DynamicModule[0]
	if use.Name != reg.Name {
		t.Errorf("the policy loads module %q, the EnvoyProxy registers %q", use.Name, reg.Name)
	}
	if reg.Source.Local == nil || !strings.HasSuffix(reg.Source.Local.Path, "/libjwt_authz.so") {
		t.Errorf("the registered module's source is %+v, want a local libjwt_authz.so", reg.Source)
	}
	if use.FilterName == nil || *use.FilterName != "jwt_authz" {
		t.Errorf("the policy's filterName is %v, want jwt_authz", use.FilterName)
	}
	if use.Config == nil || !strings.HasPrefix(string(use.Config.Raw), `"/`) {
		t.Errorf("the policy's config is %v, want a JSON string holding the config file's path", use.Config)
	}
}
