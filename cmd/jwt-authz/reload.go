package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/jwt-authz/jwt-authz/config"
)

// reloadPoll is how often the config file is compared with what is loaded. Polling the
// content (not watching inodes) follows Kubernetes ConfigMap symlink swaps and editors that
// replace files.
const reloadPoll = 2 * time.Second

// notifyHangup catches SIGHUP from now on: without it, a SIGHUP that arrives before
// watchReloads runs would end the process and lose the log lines it keeps.
func notifyHangup() (hup chan os.Signal, stop func()) {
	hup = make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup, func() { signal.Stop(hup) }
}

// watchReloads re-reads the config on SIGHUP (from hup) and whenever the content of the file
// or of a secret file it names changes.
func (a *app) watchReloads(ctx context.Context, hup <-chan os.Signal) {
	t := time.NewTicker(reloadPoll)
	defer t.Stop()
	last := a.watchedDigest()
	// reload digests what it is about to load first, so a change made while it loads is
	// seen on the next tick; again after, if the new config names other secret files.
	reload := func() {
		files, d := a.cur.Load().cfg.SecretFiles(), a.watchedDigest()
		a.reload(ctx)
		if !slices.Equal(files, a.cur.Load().cfg.SecretFiles()) {
			d = a.watchedDigest()
		}
		last = d
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			// The decisions taken under the old config are written before the reload's
			// lines, and the reload's lines at once.
			a.logOut.Flush()
			a.log.Info("SIGHUP: reloading config")
			reload()
			a.logOut.Flush()
		case <-t.C:
			if d := a.watchedDigest(); d != nil && !bytes.Equal(d, last) {
				a.log.Info("config file or a secret file it names changed: reloading")
				reload()
			}
		}
	}
}

// reload validates the file and swaps it in atomically; an invalid file is refused, logged
// and counted, and the running config keeps serving. Calls in flight finish under the
// policy they started with.
func (a *app) reload(ctx context.Context) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg, err := config.Load(a.configPath)
	if err != nil {
		a.metrics.reloads.WithLabelValues("error").Inc()
		a.log.Error("config reload refused; keeping the running config", "err", err)
		return false
	}
	prev := a.cur.Load()
	if cfg.GRPCAddress != prev.cfg.GRPCAddress || cfg.HTTPAddress != prev.cfg.HTTPAddress ||
		cfg.HTTPAuthzAddress != prev.cfg.HTTPAuthzAddress ||
		*cfg.Reflection != *prev.cfg.Reflection || (cfg.TLS == nil) != (prev.cfg.TLS == nil) ||
		cfg.GRPCMaxConcurrentStreams != prev.cfg.GRPCMaxConcurrentStreams {
		a.log.Warn("listener settings changed; they take effect on restart")
	}
	if cfg.Tracing.Enabled != prev.cfg.Tracing.Enabled || *cfg.Tracing.SamplingRatio != *prev.cfg.Tracing.SamplingRatio {
		a.log.Warn("tracing settings changed; they take effect on restart")
	}
	inst, err := a.build(ctx, cfg, prev)
	if err != nil {
		a.metrics.reloads.WithLabelValues("error").Inc()
		a.log.Error("config reload refused; keeping the running config", "err", err)
		return false
	}
	a.cur.Store(inst)
	a.authz.SetPolicy(inst.policy)
	a.applyMemoryLimit(cfg)
	if a.forward != nil {
		a.forward.SetTrustedProxies(cfg.TrustedProxies())
	}
	prev.stopExcept(inst)
	a.metrics.reloads.WithLabelValues("ok").Inc()
	a.log.Info("config reloaded", "providers", len(cfg.Providers), "rules", len(cfg.Rules))
	return true
}

// watchedDigest digests the config file and the secret files the running config names
// (config.SecretFiles), each with its name; nil when the config file cannot be read. A secret
// file that cannot be read digests as missing, so its return reloads too.
func (a *app) watchedDigest() []byte {
	b, err := os.ReadFile(a.configPath)
	if err != nil {
		return nil
	}
	h := sha256.New()
	h.Write(b)
	for _, f := range a.cur.Load().cfg.SecretFiles() {
		h.Write([]byte(f))
		if b, err := os.ReadFile(f); err == nil {
			d := sha256.Sum256(b)
			h.Write(d[:])
		} else {
			h.Write([]byte{0}) // missing: a digest never has a single byte
		}
	}
	return h.Sum(nil)
}
