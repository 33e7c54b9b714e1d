package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// memory reads what the memory benchmark reports after a run: the server's resident set
// (VmRSS) and peak (VmHWM) from /proc, and from its /metrics the token-cache size (to show
// the tokens are cached) and the Go heap in use.
func memory(pid int, metricsURL string) (map[string]float64, error) {
	out := map[string]float64{}
	if pid > 0 {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// "VmRSS:	   51234 kB"
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok || (k != "VmRSS" && k != "VmHWM") {
				continue
			}
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
			}
			out[map[string]string{"VmRSS": "rss_bytes", "VmHWM": "hwm_bytes"}[k]] = kb * 1024
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if metricsURL != "" {
		want := map[string]string{
			"jwt_authz_token_cache_entries": "cache_entries",
			"go_memstats_heap_inuse_bytes":  "heap_inuse_bytes",
			"go_memstats_sys_bytes":         "go_sys_bytes",
		}
		resp, err := http.Get(metricsURL)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", metricsURL, resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			// Unlabelled gauges only: "name value".
			name, val, ok := strings.Cut(sc.Text(), " ")
			if key, hit := want[name]; ok && hit {
				if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					out[key] = v
				}
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		if _, ok := out["cache_entries"]; !ok {
			return nil, fmt.Errorf("%s: no jwt_authz_token_cache_entries", metricsURL)
		}
	}
	return out, nil
}
