package deploy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const docsFile = "../docs/deploy.md"

// docBlock is one ```yaml block of the docs, named by its first line: "# PATH[: comment]".
type docBlock struct {
	path string
	text string
}

var blockName = regexp.MustCompile(`^# (\S+\.yaml)\b`)

func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	data, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	var cur *strings.Builder
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```yaml":
			cur = new(strings.Builder)
		case cur != nil && strings.TrimSpace(line) == "```":
			text := cur.String()
			first, _, _ := strings.Cut(text, "\n")
			m := blockName.FindStringSubmatch(first)
			if m == nil {
				t.Errorf("%s:%d: a yaml block must start with \"# path.yaml\" naming the file it is", docsFile, i+1)
			} else {
				blocks = append(blocks, docBlock{path: m[1], text: text})
			}
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if len(blocks) == 0 {
		t.Fatalf("%s: no yaml blocks", docsFile)
	}
	return blocks
}

// TestDocs: every YAML block of docs/deploy.md is either a copy of a file in deploy/ (and
// must still equal it) or a file the reader writes, which is decoded and used as the docs say:
// the overlay is rendered with kubectl kustomize, the values file with the chart, and every
// jwt-authz config goes through jwt-authz -check.
func TestDocs(t *testing.T) {
	user := t.TempDir()
	for _, b := range docBlocks(t) {
		if rel, ok := strings.CutPrefix(b.path, "deploy/"); ok {
			t.Run(b.path, func(t *testing.T) {
				repo, err := os.ReadFile(rel)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(parseYAML(t, string(repo)), parseYAML(t, b.text)); diff != "" {
					t.Errorf("docs block differs from %s (-file +docs):\n%s", b.path, diff)
				}
			})
			continue
		}
		f := filepath.Join(user, filepath.FromSlash(b.path))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(b.text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(b.path, func(t *testing.T) { checkUserFile(t, b) })
	}

	// The overlay, rendered as "kubectl apply -k overlays/prod" would, from a tree where
	// ../../deploy/kubernetes is this repository's base.
	overlay := filepath.Join(user, "overlays", "prod")
	if _, err := os.Stat(filepath.Join(overlay, "kustomization.yaml")); err != nil {
		return
	}
	t.Run("overlay", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("kubectl not installed")
		}
		abs, err := filepath.Abs(kustomizeDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(user, "deploy"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(user, "deploy", "kubernetes")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, kubectl, "kustomize", overlay).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize overlays/prod: %v\n%s", err, out)
		}
		m, err := decodeDocuments("overlay", out)
		if err != nil {
			t.Fatal(err)
		}
		var rest manifests
		for _, o := range m {
			if o.Kind != "Namespace" {
				rest = append(rest, o)
			}
		}
		checkWorkload(t, rest)
		runCheck(t, configFile(t, rest))
		if img := one[appsv1.Deployment](t, rest).Spec.Template.Spec.Containers[0].Image; !strings.HasPrefix(img, "ghcr.io/jwt-authz/jwt-authz:") {
			t.Errorf("overlay image %q", img)
		}
		if strings.Contains(configFile(t, rest), "issuer.example.com") {
			t.Errorf("the overlay's ConfigMap patch did not replace the example config")
		}
	})
}

func parseYAML(t *testing.T, s string) []any {
	t.Helper()
	var docs []any
	for _, d := range splitDocuments([]byte(s)) {
		var v any
		if err := yaml.Unmarshal(d, &v); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, v)
	}
	return docs
}

// checkUserFile decodes a file the docs ask the reader to write, by what it is.
func checkUserFile(t *testing.T, b docBlock) {
	js, err := yamlToJSON([]byte(b.text))
	if err != nil {
		t.Fatal(err)
	}
	var head map[string]any
	if err := json.Unmarshal(js, &head); err != nil {
		t.Fatal(err)
	}
	switch {
	case head["kind"] == "Kustomization":
		// The fields the docs use; kubectl renders the overlay in TestDocs/overlay.
		var k struct {
			APIVersion string   `json:"apiVersion"`
			Kind       string   `json:"kind"`
			Resources  []string `json:"resources"`
			Images     []struct {
				Name    string `json:"name"`
				NewName string `json:"newName,omitempty"`
				NewTag  string `json:"newTag,omitempty"`
			} `json:"images"`
			Patches []struct {
				Path string `json:"path"`
			} `json:"patches"`
		}
		if err := decodeStrict(js, &k); err != nil {
			t.Error(err)
		}
	case head["kind"] != nil:
		o, err := decodeDocument(b.path, []byte(b.text))
		if err != nil {
			t.Fatal(err)
		}
		if cm, ok := o.Typed.(*corev1.ConfigMap); ok {
			runCheck(t, cm.Data[configKey])
		}
	case head["config"] != nil:
		// Chart values: rendered over the chart's defaults, then held to the same promises.
		var vals map[string]any
		if err := yaml.Unmarshal([]byte(b.text), &vals); err != nil {
			t.Fatal(err)
		}
		m := mustRender(t, "jwt-authz", "jwt-authz", vals)
		checkWorkload(t, m)
		runCheck(t, configFile(t, m))
	default:
		t.Errorf("%s: not a kind of file this test knows", b.path)
	}
}
