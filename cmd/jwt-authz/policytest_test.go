package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepositoryPolicyTests runs the policy test files kept beside the repository's example
// configs, as a team would in its CI.
func TestRepositoryPolicyTests(t *testing.T) {
	files := []string{"../../envoy/jwt-authz.test.yaml", "../../config/testdata/example.test.yaml", "../../frontdoors/jwt-authz.test.yaml"}
	var stdout bytes.Buffer
	err := run(context.Background(), append([]string{"-test"}, files...), &stdout, &stdout)
	if err != nil || !strings.HasSuffix(stdout.String(), " passed, 0 failed\n") || strings.HasPrefix(stdout.String(), "0 passed") {
		t.Errorf("jwt-authz -test %s = %v\n%s", strings.Join(files, " "), err, stdout.String())
	}
}

// TestPolicyTestFailures: a case that fails prints what differs and the whole answer, the
// count line says so, and the exit status is non-zero; a broken file fails too.
func TestPolicyTestFailures(t *testing.T) {
	dir := t.TempDir()
	cfg, err := filepath.Abs("../../envoy/jwt-authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bad := write("bad.test.yaml", `config: `+cfg+`
signers: [{provider: demo}]
cases:
  - name: wrong expectation
    request: {path: /admin/users}
    token: {claims: {sub: alice, scope: read}}
    expect: {decision: allow, headers: {x-jwt-sub: bob}}
  - name: right expectation
    request: {path: /public}
    expect: {decision: allow, rule: public}
`)
	misspelt := write("misspelt.test.yaml", "config: "+cfg+"\ncases:\n- request: {path: /}\n  expect: {decison: allow}\n")
	noSigner := write("nosigner.test.yaml", "config: "+cfg+"\ncases:\n- request: {path: /api}\n  token: {claims: {sub: a}}\n  expect: {decision: allow}\n")
	var stdout bytes.Buffer
	err = run(context.Background(), []string{"-test", bad, misspelt, noSigner}, &stdout, &stdout)
	out := stdout.String()
	if !errors.Is(err, errQuietExit) {
		t.Errorf("jwt-authz -test (failing cases) = %v, want a non-zero exit", err)
	}
	for _, want := range []string{
		`"wrong expectation": GET /admin/users`,
		"decision: got deny, want allow",
		`upstream header x-jwt-sub: got "", want "bob"`,
		`(answer: deny 403 insufficient_scope, rule "admin")`,
		"field decison not found",
		`no signer declared for provider "demo"`,
		"1 passed, 3 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("jwt-authz -test output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "right expectation") {
		t.Errorf("a passing case was reported:\n%s", out)
	}
}

// FuzzLoadTestFile: any test file is loaded or refused with an error, never a panic.
func FuzzLoadTestFile(f *testing.F) {
	for _, name := range []string{"../../envoy/jwt-authz.test.yaml", "../../config/testdata/example.test.yaml"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("config: x\ncases: [{expect: {decision: allow}, token: {claims: {a: [1, {b: null}]}}}]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.test.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if tf, err := loadTestFile(path); err == nil && (tf.Config == "" || len(tf.Cases) == 0) {
			t.Errorf("loadTestFile(%q) accepted a file without config or cases", data)
		}
	})
}

// TestPolicyTestsDocExample loads the test file docs/policy-tests.md shows, so it cannot rot.
func TestPolicyTestsDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy-tests.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```yaml\n# policy/api.test.yaml\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok || block == "" {
		t.Fatal("docs/policy-tests.md has no '# policy/api.test.yaml' block")
	}
	path := filepath.Join(t.TempDir(), "api.test.yaml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := loadTestFile(path)
	if err != nil || len(tf.Cases) != 2 || tf.Signers[0].Provider != "demo" {
		t.Errorf("loadTestFile(docs example) = %+v, %v", tf, err)
	}
}
