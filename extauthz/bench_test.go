package extauthz

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// BenchmarkCheck measures one allow decision through Server.AppendCheck, the path the
// gRPC service runs, with the token cache off: reading the serialized request,
// extraction, parsing, signature verification, claims, rule matching and encoding the
// response, for each key type.
// Print the numbers with: go test -run=^$ -bench=BenchmarkCheck -benchmem ./extauthz/
func BenchmarkCheck(b *testing.B) { benchmarkCheck(b, "cache: {enabled: false}\n") }

// BenchmarkCheckCached is the same with the default cache: every call after the first
// is a hit, which is what a client repeating its token costs.
func BenchmarkCheckCached(b *testing.B) { benchmarkCheck(b, "") }

// BenchmarkCheckCachedCEL is BenchmarkCheckCached with one typical require.cel on the api
// rule (tenant isolation: a claim compared with a request header): its difference from
// BenchmarkCheckCached is what a CEL condition costs on a cache hit.
func BenchmarkCheckCachedCEL(b *testing.B) {
	benchmarkCheck(b, "", `cel: "claims.tenant == request.headers['x-tenant-id']"`)
}

func benchmarkCheck(b *testing.B, extra string, require ...string) {
	p := newPolicy(b, extra+`
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [RS256, PS256, ES256, EdDSA, HS256]
  keys: [{jwks_file: unused.json}]
  claims_to_headers: {sub: x-jwt-sub, roles: x-jwt-roles}
  forward_payload_header: x-jwt-payload
rules:
- name: public
  match: {path_prefix: /public}
  action: allow
- name: api
  match: {path_prefix: /api}
  require: {providers: [demo]`+strings.Join(append([]string{""}, require...), ", ")+`}
`, map[string]KeySource{"demo": newFakeKeys("rsa", "ec256", "ed", "hs256")})
	s := NewServer(p, Options{Now: func() time.Time { return testNow }})
	for _, bc := range []struct{ alg, kid string }{
		{"RS256", "rsa"}, {"PS256", "rsa"}, {"ES256", "ec256"}, {"EdDSA", "ed"}, {"HS256", "hs256"},
	} {
		b.Run(bc.alg, func(b *testing.B) {
			tok := sig.mint(b, bc.alg, bc.kid, func(_, c map[string]any) {
				c["roles"], c["tenant"] = []string{"reader", "writer"}, "acme"
			})
			req := envoyRequest{path: "/api/orders?limit=10", headers: append(hdrs("x-tenant-id", "acme"), bearer(tok)...)}.proto()
			ctx := context.Background()
			if resp, _ := s.Check(ctx, req); resp.GetOkResponse() == nil {
				b.Fatalf("Check(%s) = %v, want allow", bc.alg, resp)
			}
			in, err := proto.Marshal(req)
			if err != nil {
				b.Fatal(err)
			}
			out := make([]byte, 0, 512) // as the gRPC handler allocates per answer
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				out = s.AppendCheck(out[:0], ctx, in)
			}
			// CPU time, unlike ns/op, does not count the time other work on a shared
			// machine held the core; it does count the garbage collector.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the process's user and system CPU time so far, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkCacheBytesPerToken reports the live heap one cached token costs (bytes/token,
// after a GC), with claims shaped like bench/cmd/mint-tokens': the number the cache's
// byte accounting (entryOverhead) is calibrated against.
func BenchmarkCacheBytesPerToken(b *testing.B) {
	const n = 20000
	const cfg = `
cache: {max_entries: 1000000}
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [HS256]
  keys: [{jwks_file: unused.json}]
  claims_to_headers: {sub: x-jwt-sub}
  forward_token: false
rules:
- name: api
  match: {path_prefix: /api}
  require: {}
`
	keys := map[string]KeySource{"demo": newFakeKeys("hs256")}
	reqs := make([][]byte, n)
	for i := range reqs {
		tok := sig.mint(b, "HS256", "hs256", func(_, c map[string]any) {
			c["sub"], c["scope"], c["jti"] = fmt.Sprintf("user-%07d", i), "read write", fmt.Sprintf("jti-%d", i)
		})
		reqs[i], _ = proto.Marshal(envoyRequest{headers: bearer(tok)}.proto())
	}
	for b.Loop() {
		p := newPolicy(b, cfg, keys)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, in := range reqs {
			if _, d := p.AppendCheck(nil, context.Background(), in, testNow); !d.Allowed {
				b.Fatalf("decision %+v", d)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/token")
		var accounted int64
		for i := range p.cache.shards {
			accounted += p.cache.shards[i].bytes
		}
		b.ReportMetric(float64(accounted)/n, "accounted/token")
		runtime.KeepAlive(p)
	}
}
