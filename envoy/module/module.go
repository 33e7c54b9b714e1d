// Command module is jwt-authz as an Envoy dynamic module: a shared library
// (go build -buildmode=c-shared, make module) that Envoy 1.40 loads as an HTTP filter and
// that runs the same decision as the jwt-authz server, on the same config file, inside
// Envoy's worker threads. See docs/in-process.md.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/extauthz"
	"github.com/jwt-authz/jwt-authz/internal/dpopsetup"
	"github.com/jwt-authz/jwt-authz/internal/gctune"
	"github.com/jwt-authz/jwt-authz/internal/linewriter"
	"github.com/jwt-authz/jwt-authz/introspect"
	"github.com/jwt-authz/jwt-authz/keys"
)

// main is never run: Envoy calls the exported hooks.
func main() {}

// module is one filter config: the policy and key sets of one jwt-authz config file. Envoy
// makes one per filter in its config (and a new one when a listener update brings a new
// filter config), on the main thread.
type module struct {
	srv       *extauthz.Server
	log       *slog.Logger
	logOut    *linewriter.Writer
	stop      context.CancelFunc // ends the key sets' background refresh
	fetchWait time.Duration      // how long an off-thread decision waits for a key refetch

	// Envoy's counters (docs/in-process.md, "Operating it"): decisions by decision and
	// reason, counted in Go and flushed to Envoy, and recovered panics (a counter id).
	counts          *decisionCounts
	panicsRecovered uint
}

// panics counts the panics the hooks recovered, across every filter config.
var panics atomic.Int64

// gcTuning starts gctune's pacing of the collector, as the server does: with Go's default
// GOGC a small live heap is collected every few hundred requests (internal/gctune).
var gcTuning sync.Once

// newModule loads the filter config: the path of a jwt-authz config file, or the YAML of
// one (a value with a newline in it). Key sets start fetching in the background; a request
// that arrives before its keys is answered 503 keys_unavailable, as the server does.
func newModule(envoyConfig uintptr, filterConfig string) (*module, error) {
	cfg, err := loadConfig(filterConfig)
	if err != nil {
		return nil, err
	}
	decided, err := defineCounter(envoyConfig, "decisions", "decision", "reason")
	if err != nil {
		return nil, err
	}
	recovered, err := defineCounter(envoyConfig, "panics_recovered")
	if err != nil {
		return nil, err
	}
	gcTuning.Do(func() { gctune.Start() }) // one Go runtime per Envoy: paced once, for good
	workers := envoyWorkers()
	procs := ensureProcs(workers)
	logOut := linewriter.New(os.Stderr, 100*time.Millisecond)
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: logLevel(cfg.Log.Level)}))
	if limit, set := gctune.SetMemoryLimit(cacheBound(cfg)); set {
		log.Debug("soft memory limit from cache.max_bytes", "bytes", limit)
	}
	ctx, stop := context.WithCancel(context.Background())
	sources := map[string]extauthz.KeySource{}
	for _, p := range cfg.Providers {
		set, err := keys.NewSet(p.Issuer, p.Keys, cfg.Path, keys.Options{})
		if err != nil {
			stop()
			return nil, fmt.Errorf("providers %q: %w", p.Name, err)
		}
		go func() {
			if err := set.Start(ctx); err != nil {
				log.Warn("keys not loaded yet", "provider", p.Name, "err", err)
			}
		}()
		sources[p.Name] = noWaitKeys{set}
	}
	decryption := map[string]extauthz.KeySource{}
	for _, p := range cfg.Providers {
		if p.Encryption == nil {
			continue
		}
		set, err := keys.NewDecryptionSet(p.Name, p.Encryption.Keys, cfg.Path, keys.Options{})
		if err != nil {
			stop()
			return nil, fmt.Errorf("providers %q: encryption: %w", p.Name, err)
		}
		_ = set.Start(ctx) // files only: loaded by NewDecryptionSet, then watched
		decryption[p.Name] = set
	}
	clients, err := introspect.Clients(cfg)
	if err != nil {
		stop()
		return nil, err
	}
	introspectors := map[string]extauthz.Introspector{}
	for name, c := range clients {
		introspectors[name] = noWaitIntrospector{c}
	}
	dpopOpts, closeStore, err := dpopsetup.Options(cfg)
	if err != nil {
		stop()
		return nil, err
	}
	if closeStore != nil { // the replay store's connections go when the filter config does
		cancel := stop
		stop = func() { cancel(); closeStore() }
	}
	opts := []extauthz.PolicyOption{extauthz.WithDecryptionKeys(decryption), extauthz.WithIntrospectors(introspectors)}
	policy, err := extauthz.NewPolicy(cfg, sources, append(opts, dpopOpts...)...)
	if err != nil {
		stop()
		return nil, err
	}
	var decisionLog io.Writer
	if logLevel(cfg.Log.Level) <= slog.LevelInfo {
		decisionLog = logOut
	}
	m := &module{log: log, logOut: logOut, stop: stop, fetchWait: 10 * time.Second, panicsRecovered: recovered}
	m.srv = extauthz.NewServer(policy, extauthz.Options{Logger: log, DecisionLog: decisionLog, AllowSampleRate: cfg.Log.AllowSampleRate})
	m.counts = newDecisionCounts(envoyConfig, decided)
	log.Info("jwt-authz module loaded", "providers", len(cfg.Providers), "rules", len(cfg.Rules), "abi", abiVersion,
		"envoy_workers", workers, "gomaxprocs", procs)
	return m, nil
}

// loadConfig reads the filter config: the path of a jwt-authz config file, or the YAML of
// one when it spans lines. Envoy Gateway hands a module its config as JSON: a JSON string is
// read as the path, a JSON object as the config itself (JSON is YAML). Relative paths in an
// inline config are resolved against Envoy's working directory.
func loadConfig(filterConfig string) (*config.Config, error) {
	text := strings.TrimSpace(filterConfig)
	if strings.HasPrefix(text, `"`) {
		var path string
		if err := json.Unmarshal([]byte(text), &path); err != nil {
			return nil, fmt.Errorf("config: filter_config is a malformed JSON string: %w", err)
		}
		text = strings.TrimSpace(path)
	}
	if strings.Contains(text, "\n") || strings.HasPrefix(text, "{") {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		cfg, err := config.Parse([]byte(text), wd)
		if err != nil {
			return nil, fmt.Errorf("config: inline filter_config: %w", err)
		}
		return cfg, nil
	}
	if text == "" {
		return nil, fmt.Errorf("config: filter_config is empty: give the path of a jwt-authz config file, or its YAML")
	}
	if !filepath.IsAbs(text) {
		if abs, err := filepath.Abs(text); err == nil {
			text = abs
		}
	}
	return config.Load(text)
}

func cacheBound(cfg *config.Config) int64 {
	if cfg.Cache.Enabled != nil && *cfg.Cache.Enabled {
		return cfg.Cache.MaxBytes
	}
	return 0
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

func (m *module) close() {
	m.counts.close()
	m.stop()
	m.logOut.Close()
}

// recoverPanic, deferred in a hook, turns a panic into a count and a log line. Go's panic
// must never unwind into Envoy: it would abort the whole proxy.
func recoverPanic(where string) {
	if v := recover(); v != nil {
		(*module)(nil).panicked(where, v)
	}
}

// panicked counts and logs a recovered panic; m may be nil (no filter config yet).
func (m *module) panicked(where string, v any) {
	n := panics.Add(1)
	log := slog.Default()
	if m != nil {
		log = m.log
	}
	msg := fmt.Sprint(v)
	if len(msg) > 200 {
		msg = msg[:200]
	}
	log.Error("panic recovered in the envoy module", "where", where, "panic", msg, "panics_total", n)
}

// countPanic adds a recovered panic to the Envoy counter; m may be nil.
func (m *module) countPanic(envoy uintptr) {
	if m == nil {
		return
	}
	defer recoverPanic("count panic")
	incrementCounter(envoy, m.panicsRecovered)
}

// internalError answers 500 after a recovered panic: never an allow.
func internalError(envoy uintptr) {
	defer recoverPanic("internal error reply")
	setMetadata(envoy, metadataNamespace, "decision", "deny")
	setMetadata(envoy, metadataNamespace, "reason", string(extauthz.ReasonInternal))
	sendResponse(envoy, 500, [][2]string{{"content-type", "application/json"}, {"cache-control", "no-store"}},
		[]byte(`{"error":"server_error","reason":"internal_error"}`+"\n"), "jwt_authz_internal_error")
}
