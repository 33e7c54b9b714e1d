package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseClaimPath(t *testing.T) {
	tests := []struct {
		name, path string
		want       ClaimPath
		bad        bool
	}{
		{name: "top-level", path: "sub", want: ClaimPath{Whole: "sub", Segments: []string{"sub"}}},
		{name: "dotted", path: "realm_access.roles", want: ClaimPath{Whole: "realm_access.roles", Segments: []string{"realm_access", "roles"}}},
		{name: "namespaced", path: "https://example.com/roles", want: ClaimPath{Whole: "https://example.com/roles", Segments: []string{"https://example", "com/roles"}}},
		{name: "pointer", path: "/resource_access/billing.example.com/roles", want: ClaimPath{Segments: []string{"resource_access", "billing.example.com", "roles"}}},
		{name: "pointer escapes", path: "/a~1b/c~0d/~01", want: ClaimPath{Segments: []string{"a/b", "c~d", "~1"}}},
		{name: "pointer to an empty name", path: "/", want: ClaimPath{Segments: []string{""}}},
		{name: "empty", path: "", bad: true},
		{name: "backslash in dotted", path: `resource_access.billing\.example\.com.roles`, bad: true},
		{name: "tilde alone", path: "/a~", bad: true},
		{name: "tilde two", path: "/a~2", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClaimPath(tc.path)
			if tc.bad {
				if !errors.Is(err, ErrClaimPath) {
					t.Errorf("ParseClaimPath(%q) = %v, %v, want ErrClaimPath", tc.path, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseClaimPath(%q) = %v", tc.path, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseClaimPath(%q) (-want +got):\n%s", tc.path, diff)
			}
		})
	}
}

func TestClaimPathLookup(t *testing.T) {
	var claims map[string]any
	doc := `{"sub":"alice","realm_access":{"roles":["ops"]},"https://example.com/tier":"gold",
		"resource_access":{"billing.example.com":{"roles":["admin"]}},"a/b":{"c~d":1},"a":{"b":"dotted"}}`
	if err := json.Unmarshal([]byte(doc), &claims); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want any // nil: not found
	}{
		{"sub", "alice"},
		{"realm_access.roles", []any{"ops"}},
		{"/realm_access/roles", []any{"ops"}},
		{"https://example.com/tier", "gold"},
		{"/resource_access/billing.example.com/roles", []any{"admin"}},
		{"resource_access.billing.example.com.roles", nil}, // why the pointer form exists
		{"/a~1b/c~0d", float64(1)},
		{"a.b", "dotted"},
		{"/a.b", nil},
		{"/sub/x", nil},
		{"/missing", nil},
	}
	for _, tc := range tests {
		p, err := ParseClaimPath(tc.path)
		if err != nil {
			t.Fatalf("ParseClaimPath(%q): %v", tc.path, err)
		}
		got, ok := p.Lookup(claims)
		if ok != (tc.want != nil) || !cmp.Equal(got, tc.want) {
			t.Errorf("Lookup(%q) = %v, %v, want %v", tc.path, got, ok, tc.want)
		}
	}
}

// FuzzParseClaimPath: any path parses or is refused without a panic, and a JSON Pointer
// that parses finds exactly the member it names in a document built from its segments.
func FuzzParseClaimPath(f *testing.F) {
	for _, s := range []string{"sub", "a.b", "/a/b", "/a~1b/~0", "/", "/~", `a\.b`, "", "..", "/a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		p, err := ParseClaimPath(path)
		if err != nil {
			if !errors.Is(err, ErrClaimPath) {
				t.Fatalf("ParseClaimPath(%q) error %v is not ErrClaimPath", path, err)
			}
			return
		}
		if !strings.HasPrefix(path, "/") {
			return
		}
		var doc any = "found"
		for i := len(p.Segments) - 1; i >= 0; i-- {
			doc = map[string]any{p.Segments[i]: doc}
		}
		if got, ok := p.Lookup(doc.(map[string]any)); !ok || got != "found" {
			t.Fatalf("Lookup(%q) in a document built from its segments = %v, %v", path, got, ok)
		}
	})
}
