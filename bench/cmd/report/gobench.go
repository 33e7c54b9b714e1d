package main

import (
	"bufio"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/jwt-authz/jwt-authz/bench/load"
)

// goBench is one benchmark of `go test -bench -benchmem` output, with the medians of its
// -count repetitions.
type goBench struct {
	Name   string  `json:"name"`   // without the -GOMAXPROCS suffix
	Path   string  `json:"path"`   // "cached", "uncached" or "" when the name does not say
	Alg    string  `json:"alg"`    // the JWS algorithm named in it, if any
	NsOp   float64 `json:"ns_op"`  // median
	BOp    float64 `json:"b_op"`   // median
	Allocs float64 `json:"allocs"` // median
	Runs   int     `json:"runs"`
}

// algorithms a benchmark name may mention, as RFC 7518 spells them.
var algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"}

// parseGoBench reads the result lines of `go test -bench -benchmem` output; other lines
// (goos, PASS, logs) are skipped.
func parseGoBench(r io.Reader) ([]goBench, error) {
	type samples struct{ ns, b, allocs []float64 }
	byName := map[string]*samples{}
	var order []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// BenchmarkX/sub-2  1234  5678 ns/op  910 B/op  11 allocs/op
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := trimProcs(f[0])
		s := byName[name]
		if s == nil {
			s = &samples{}
			byName[name] = s
			order = append(order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				s.ns = append(s.ns, v)
			case "B/op":
				s.b = append(s.b, v)
			case "allocs/op":
				s.allocs = append(s.allocs, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	families := map[string]bool{}
	for _, n := range order {
		families[family(n)] = true
	}
	var out []goBench
	for _, n := range order {
		s := byName[n]
		if len(s.ns) == 0 {
			continue
		}
		out = append(out, goBench{
			Name: n, Path: cachePath(n, families), Alg: algorithm(n),
			NsOp: load.Median(s.ns), BOp: medianOrZero(s.b), Allocs: medianOrZero(s.allocs), Runs: len(s.ns),
		})
	}
	return out, nil
}

// trimProcs drops the "-N" GOMAXPROCS suffix go test adds when N > 1.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

func family(name string) string {
	f, _, _ := strings.Cut(name, "/")
	return f
}

// cachePath says whether a benchmark measures the token cache's hit path or a verification,
// from the words in its name ("BenchmarkCheck/uncached/RS256", "BenchmarkCheckCached/RS256").
// A family without a marker whose sibling family is the same name plus "Cached"
// (BenchmarkCheck beside BenchmarkCheckCached) is taken as the uncached one.
func cachePath(name string, families map[string]bool) string {
	lower := strings.ToLower(name)
	for _, w := range []string{"uncached", "nocache", "no_cache", "no-cache", "cacheoff", "cache=off", "cache_off", "miss", "cold"} {
		if strings.Contains(lower, w) {
			return "uncached"
		}
	}
	for _, w := range []string{"cached", "cacheon", "cache=on", "cache_on", "hit", "warm"} {
		if strings.Contains(lower, w) {
			return "cached"
		}
	}
	if families[family(name)+"Cached"] {
		return "uncached"
	}
	return ""
}

func algorithm(name string) string {
	for _, seg := range strings.Split(name, "/") {
		for _, a := range algorithms {
			if strings.EqualFold(seg, a) || strings.HasSuffix(strings.ToUpper(seg), strings.ToUpper(a)) {
				return a
			}
		}
	}
	return ""
}

func medianOrZero(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return load.Median(xs)
}

// sortGoBench orders by algorithm (in the order of the algorithms list), then cached before
// uncached, then name.
func sortGoBench(bs []goBench) {
	rank := func(a string) int {
		if i := slices.Index(algorithms, a); i >= 0 {
			return i
		}
		return len(algorithms)
	}
	slices.SortStableFunc(bs, func(a, b goBench) int {
		if d := rank(a.Alg) - rank(b.Alg); d != 0 {
			return d
		}
		if a.Path != b.Path {
			return strings.Compare(a.Path, b.Path)
		}
		return strings.Compare(a.Name, b.Name)
	})
}
