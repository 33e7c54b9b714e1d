package config

import (
	"strings"
	"testing"
)

func TestParseShadow(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string // in minimal: old, new
		want    string    // the error names this field path; "" for no error
	}{
		{name: "rule in shadow", replace: [2]string{"  require: {providers: [demo]}", "  require: {providers: [demo]}\n  mode: shadow"}},
		{name: "rule enforced", replace: [2]string{"  require: {providers: [demo]}", "  require: {providers: [demo]}\n  mode: enforce"}},
		{name: "policy in shadow", replace: [2]string{"rules:", "shadow: true\nrules:"}},
		{name: "unknown rule mode", replace: [2]string{"  require: {providers: [demo]}", "  require: {providers: [demo]}\n  mode: dry-run"}, want: "rules[0].mode"},
		{name: "shadow not a bool", replace: [2]string{"rules:", "shadow: sometimes\nrules:"}, want: "shadow"},
	}
	for _, tc := range tests {
		text := strings.Replace(minimal, tc.replace[0], tc.replace[1], 1)
		if text == minimal {
			t.Fatalf("%s: minimal has no %q to replace", tc.name, tc.replace[0])
		}
		_, err := Parse([]byte(text), t.TempDir())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Parse(%s) = %v, want no error", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want+":")):
			t.Errorf("Parse(%s) = %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}
