// Command report turns what bench/run.sh collected into docs/benchmarks.md: the load
// generators' JSON records (results.jsonl), the `go test -bench` output (gobench.txt), the
// machine facts (facts.txt), the commands that ran (commands.txt) and the pprof top tables
// (profile-*.txt), all in one work directory. It combines rounds by their median, computes
// each target's ratio from runs of the same round, and says pass or miss. With -charts-data
// it also writes the numbers bench/charts.py draws.
//
//	report -dir WORK -out docs/benchmarks.md -charts docs/benchmarks [-charts-data WORK/charts.json]
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jwt-authz/jwt-authz/bench/load"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "work directory of a bench/run.sh run")
	out := fs.String("out", "", "markdown report to write")
	charts := fs.String("charts", "docs/benchmarks", "directory of the PNG charts (linked when present)")
	chartsData := fs.String("charts-data", "", "write the numbers for bench/charts.py here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || (*out == "" && *chartsData == "") {
		return errors.New("-dir and one of -out, -charts-data are required")
	}
	recs, err := readRecords(filepath.Join(*dir, "results.jsonl"))
	if err != nil {
		return err
	}
	var benches []goBench
	if f, err := os.Open(filepath.Join(*dir, "gobench.txt")); err == nil {
		benches, err = parseGoBench(f)
		f.Close()
		if err != nil {
			return err
		}
		sortGoBench(benches)
	}
	facts, err := readFacts(filepath.Join(*dir, "facts.txt"))
	if err != nil {
		return err
	}
	rep := newReport(recs, benches, facts, *dir)
	if *chartsData != "" {
		data, err := json.MarshalIndent(rep.chartData(), "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*chartsData, data, 0o644); err != nil {
			return err
		}
	}
	if *out != "" {
		rel, err := filepath.Rel(filepath.Dir(*out), *charts)
		if err != nil {
			return err
		}
		rep.chartsDir, rep.chartsLink = *charts, filepath.ToSlash(rel)
		return os.WriteFile(*out, []byte(rep.markdown()), 0o644)
	}
	return nil
}

// readRecords reads a results file; a missing one (no load phase ran) holds no records.
func readRecords(path string) ([]load.Record, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []load.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r load.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

// readFacts reads "key=value" lines; values keep their spaces.
func readFacts(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	facts := map[string]string{}
	for l := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(strings.TrimRight(l, "\n"), "="); ok {
			facts[k] = v
		}
	}
	return facts, nil
}
