package extauthz

import (
	"os"
	"strings"
	"testing"
)

// TestReasonsDocumented: every reason word is listed in the README, so an operator reading
// a log line or a metric label can look it up.
func TestReasonsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Reasons {
		if !strings.Contains(string(readme), "`"+string(r)+"`") {
			t.Errorf("README does not list reason %q", r)
		}
	}
	for _, te := range tokenErrors {
		if denialFor(te.err).reason != te.reason {
			t.Errorf("denialFor(%v) = %s, want %s", te.err, denialFor(te.err).reason, te.reason)
		}
	}
}
