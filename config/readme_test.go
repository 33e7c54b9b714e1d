package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEConfigs loads every jwt-authz config block of the README and the docs (a
// ```yaml block whose first line starts with "# jwt-authz config"), so the documentation
// cannot rot.
func TestREADMEConfigs(t *testing.T) {
	for _, file := range []string{"../README.md", "../docs/tokens.md"} {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
		n := 0
		for _, b := range blocks {
			if !strings.HasPrefix(b[1], "# jwt-authz config") {
				continue
			}
			n++
			if _, err := Parse([]byte(b[1]), t.TempDir()); err != nil {
				t.Errorf("%s config block %d does not load: %v\n%s", file, n, err, b[1])
			}
		}
		if n == 0 {
			t.Fatalf("%s has no jwt-authz config block; the test would check nothing", file)
		}
	}
}
