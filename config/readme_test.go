package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEConfigs loads every jwt-authz config block of the README (a ```yaml block whose
// first line starts with "# jwt-authz config"), so the documentation cannot rot.
func TestREADMEConfigs(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	n := 0
	for _, b := range blocks {
		if !strings.HasPrefix(b[1], "# jwt-authz config") {
			continue
		}
		n++
		if _, err := Parse([]byte(b[1]), t.TempDir()); err != nil {
			t.Errorf("README config block %d does not load: %v\n%s", n, err, b[1])
		}
	}
	if n == 0 {
		t.Fatal("README has no jwt-authz config block; the test would check nothing")
	}
}
