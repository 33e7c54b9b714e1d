package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/jwt-authz/jwt-authz/extauthz
BenchmarkCheck/RS256         	   10000	     80000 ns/op	    6000 B/op	      70 allocs/op
BenchmarkCheck/RS256         	   10000	     90000 ns/op	    6100 B/op	      70 allocs/op
BenchmarkCheck/RS256         	   10000	     85000 ns/op	    6200 B/op	      71 allocs/op
BenchmarkCheckCached/RS256-2 	  500000	      2000 ns/op	     900 B/op	      12 allocs/op
BenchmarkCheckAlloc/uncached/ES256 	1000	 120000 ns/op	 7000 B/op	 80 allocs/op
BenchmarkCheckAlloc/hit/EdDSA      	1000	   1500 ns/op	  800 B/op	 10 allocs/op
BenchmarkOther               	     100	       5 ns/op
PASS
ok  	github.com/jwt-authz/jwt-authz/extauthz	12.3s
`
	got, err := parseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatalf("parseGoBench: %v", err)
	}
	want := []goBench{
		{Name: "BenchmarkCheck/RS256", Path: "uncached", Alg: "RS256", NsOp: 85000, BOp: 6100, Allocs: 70, Runs: 3},
		{Name: "BenchmarkCheckCached/RS256", Path: "cached", Alg: "RS256", NsOp: 2000, BOp: 900, Allocs: 12, Runs: 1},
		{Name: "BenchmarkCheckAlloc/uncached/ES256", Path: "uncached", Alg: "ES256", NsOp: 120000, BOp: 7000, Allocs: 80, Runs: 1},
		{Name: "BenchmarkCheckAlloc/hit/EdDSA", Path: "cached", Alg: "EdDSA", NsOp: 1500, BOp: 800, Allocs: 10, Runs: 1},
		{Name: "BenchmarkOther", NsOp: 5, Runs: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseGoBench mismatch (-want +got):\n%s", diff)
	}
}

func TestCount(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.6: "1,234,568"} {
		if got := count(in); got != want {
			t.Errorf("count(%v) = %q, want %q", in, got, want)
		}
	}
}
