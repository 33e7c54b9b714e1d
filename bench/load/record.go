package load

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Record is one line of a results file: which run it was and what it measured. bench/run.sh
// collects the lines of every load generator into one file; bench/cmd/report reads it.
type Record struct {
	// Section groups comparable runs: "grpc", "envoy", "memory".
	Section string `json:"section"`
	// Name is the target and variant, as the report prints it ("jwt-authz cached").
	Name  string `json:"name"`
	Round int    `json:"round"`
	// Tokens is how many distinct tokens the run cycled through.
	Tokens int `json:"tokens"`
	Result
	// Extra holds measurements other than load: "rss_bytes", "cache_entries", ...
	Extra map[string]float64 `json:"extra,omitempty"`
}

// Append writes rec as one JSON line to the file at path, or to w when path is "" or "-".
func Append(path string, w io.Writer, rec Record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if path == "" || path == "-" {
		_, err = w.Write(line)
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
