package load

import (
	"fmt"
	"os"
	"strings"
)

// ReadTokens reads a file of tokens, one per line (as bench/cmd/mint-tokens writes them).
// With all false it returns only the first: the same token sent again and again.
func ReadTokens(path string, all bool) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var toks []string
	for l := range strings.Lines(string(data)) {
		if t := strings.TrimSpace(l); t != "" {
			toks = append(toks, t)
			if !all {
				break
			}
		}
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	return toks, nil
}
