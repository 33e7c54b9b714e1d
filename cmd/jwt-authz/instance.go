package main

import (
	"context"
	"fmt"
	"reflect"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/extauthz"
	"github.com/jwt-authz/jwt-authz/internal/dpopsetup"
	"github.com/jwt-authz/jwt-authz/introspect"
	"github.com/jwt-authz/jwt-authz/keys"
)

// instance is one loaded config: the compiled policy and the key sets behind it.
type instance struct {
	cfg    *config.Config
	policy *extauthz.Policy
	sets   map[string]*keys.Set
	// stops cancels each set's background refresh, by provider name.
	stops map[string]context.CancelFunc
	// metadataDocs are the RFC 9728 documents served on http_address, by path.
	metadataDocs map[string][]byte
	// decryptStops cancels the watch of each JWE decryption key set; these sets are local
	// files, rebuilt on every reload, never shared with another instance.
	decryptStops []context.CancelFunc
	// closeStore closes the DPoP replay store's connections; nil without one.
	closeStore func()
}

// build loads the key sets of cfg and compiles its policy. Sets of providers whose issuer and
// key sources did not change since prev are reused as they are, so a reload neither refetches
// keys nor forgets what it knew.
func (a *app) build(ctx context.Context, cfg *config.Config, prev *instance) (*instance, error) {
	inst := &instance{cfg: cfg, sets: map[string]*keys.Set{}, stops: map[string]context.CancelFunc{}}
	sources := map[string]extauthz.KeySource{}
	for _, p := range cfg.Providers {
		if prev != nil && sameKeys(prev, p) {
			inst.sets[p.Name], inst.stops[p.Name] = prev.sets[p.Name], prev.stops[p.Name]
			sources[p.Name] = inst.sets[p.Name]
			continue
		}
		set, err := keys.NewSet(p.Issuer, p.Keys, cfg.Path, keys.Options{OnFetch: a.onFetch(p.Name), TracerProvider: a.tracing.forKeys()})
		if err != nil {
			inst.stopExcept(prev)
			return nil, fmt.Errorf("providers %q: %w", p.Name, err)
		}
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		inst.sets[p.Name], inst.stops[p.Name] = set, cancel
		sources[p.Name] = set
		if err := set.Start(sctx); err != nil {
			// Not fatal: the set keeps retrying and readiness stays false until it has keys.
			a.log.Warn("keys not loaded yet", "provider", p.Name, "err", err)
		}
	}
	decryption := map[string]extauthz.KeySource{}
	for _, p := range cfg.Providers {
		if p.Encryption == nil {
			continue
		}
		set, err := keys.NewDecryptionSet(p.Name, p.Encryption.Keys, cfg.Path, keys.Options{OnFetch: a.onDecryptionKeys(p.Name)})
		if err != nil {
			inst.stopExcept(prev)
			return nil, fmt.Errorf("providers %q: encryption: %w", p.Name, err)
		}
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		inst.decryptStops = append(inst.decryptStops, cancel)
		_ = set.Start(sctx) // files only: loaded by NewDecryptionSet, then watched
		decryption[p.Name] = set
	}
	clients, err := introspect.Clients(cfg)
	if err != nil {
		inst.stopExcept(prev)
		return nil, err
	}
	introspectors := map[string]extauthz.Introspector{}
	for name, c := range clients {
		introspectors[name] = c
	}
	opts := []extauthz.PolicyOption{extauthz.WithDecryptionKeys(decryption), extauthz.WithIntrospectors(introspectors)}
	dpopOpts, closeStore, err := dpopsetup.Options(cfg)
	if err != nil {
		inst.stopExcept(prev)
		return nil, err
	}
	inst.closeStore = closeStore
	policy, err := extauthz.NewPolicy(cfg, sources, append(opts, dpopOpts...)...)
	if err != nil {
		inst.stopExcept(prev)
		return nil, err
	}
	inst.policy = policy
	inst.metadataDocs = resourceMetadataDocs(cfg)
	return inst, nil
}

func sameKeys(prev *instance, p config.Provider) bool {
	for _, old := range prev.cfg.Providers {
		if old.Name == p.Name {
			return prev.sets[p.Name] != nil && old.Issuer == p.Issuer && reflect.DeepEqual(old.Keys, p.Keys)
		}
	}
	return false
}

// stopExcept stops this instance's sets that other does not share.
func (inst *instance) stopExcept(other *instance) {
	for _, stop := range inst.decryptStops {
		stop()
	}
	if inst.closeStore != nil {
		inst.closeStore()
	}
	for name, stop := range inst.stops {
		if other != nil && other.sets[name] == inst.sets[name] {
			continue
		}
		stop()
	}
}

func (inst *instance) stop() { inst.stopExcept(nil) }
