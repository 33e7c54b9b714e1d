package keys

import (
	"context"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Lookup returns the key whose kid is kid; kid "" gets the Set's only key if it has exactly
// one. A kid it does not hold triggers one refetch of the remote sources, shared by all
// concurrent callers and at most one per unknown_kid_cooldown, which Lookup waits for until
// ctx is done; a kid still missing after a refetch in which every remote source answered is
// not refetched for again until the keys next change or a scheduled refresh succeeds. After
// a refetch that failed the kid is not remembered: the next Lookup past the cooldown tries
// again, so a key published while the issuer was failing works as soon as it recovers. found == false with a nil error means the provider
// does not use kid. A non-nil error (wrapping ErrNoKeys, ErrStale, or ctx's error) means it
// cannot tell right now: fail closed. A known kid costs a map read: no lock, no allocation.
//
// The key is shared and must not be modified. Its pointer stays the same across refreshes
// for as long as the key's material, kid, alg and use do not change, so a cache of verified
// tokens can compare it to notice that a key was withdrawn or replaced.
func (s *Set) Lookup(ctx context.Context, kid string) (*jose.JSONWebKey, bool, error) {
	if k := s.find(kid); k != nil {
		return k, true, nil
	}
	return s.lookupSlow(ctx, kid)
}

// find returns kid's key if a fresh source holds it.
func (s *Set) find(kid string) *jose.JSONWebKey {
	snap := s.snap.Load()
	e := snap.only
	if kid != "" {
		e = snap.byKID[kid]
	}
	if e.key == nil || !e.src.fresh(s.now().UnixNano()) {
		return nil
	}
	return e.key
}

func (s *Set) lookupSlow(ctx context.Context, kid string) (*jose.JSONWebKey, bool, error) {
	// A token without kid is answered from what is held: a refetch cannot make "exactly
	// one key" true.
	if kid != "" && len(s.remotes) > 0 && !s.isUnknown(kid) {
		ctx, span := s.tracer.Start(ctx, "jwt-authz.keys.refetch", trace.WithAttributes(attribute.String("jwt_authz.keys.kid", clip(kid))))
		complete, err := s.refetch(ctx, kid)
		span.SetAttributes(attribute.Bool("jwt_authz.keys.found", s.find(kid) != nil))
		span.End()
		if err != nil {
			return nil, false, fmt.Errorf("kid %q: waiting for the key refetch: %w", clip(kid), err)
		}
		if k := s.find(kid); k != nil {
			return k, true, nil
		}
		if _, held := s.snap.Load().byKID[kid]; complete && !held {
			s.rememberUnknown(kid)
		}
	}
	if err := s.health(); err != nil {
		return nil, false, fmt.Errorf("kid %q: %w", clip(kid), err)
	}
	return nil, false, nil
}

// refetch runs (or joins) the unknown-kid refetch and waits until it is over, kid has
// appeared, or ctx is done. It reports whether a refetch ran for this caller and every
// remote source answered it: false when the cooldown held it back or any fetch failed,
// since a source that did not answer may hold the kid.
func (s *Set) refetch(ctx context.Context, kid string) (bool, error) {
	snap := s.snap.Load()
	ch := s.refetches.DoChan("", func() (any, error) {
		now := s.now()
		s.unknownMu.Lock()
		if now.Before(s.nextOK) {
			s.unknownMu.Unlock()
			return false, nil
		}
		s.nextOK = now.Add(s.cooldown)
		s.unknownMu.Unlock()
		// The fetch must not die with the caller who happened to start it: others wait on
		// it. It lives as long as the Set (Start's context) and each fetch has a timeout.
		s.mu.Lock()
		life := s.life
		s.mu.Unlock()
		if life == nil {
			life = context.Background()
		}
		if life.Err() != nil {
			return false, nil
		}
		// Traced as a child of the lookup that started it, though it lives on life.
		return s.fetchRemotes(trace.ContextWithSpanContext(life, trace.SpanContextFromContext(ctx)), TriggerUnknownKID), nil
	})
	for {
		select {
		case r := <-ch:
			return r.Val.(bool), nil
		case <-snap.replaced:
			// One source answered; another may still be slow. Done if it brought kid.
			if snap = s.snap.Load(); s.find(kid) != nil {
				return true, nil
			}
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (s *Set) isUnknown(kid string) bool {
	s.unknownMu.Lock()
	defer s.unknownMu.Unlock()
	_, ok := s.unknown[kid]
	return ok
}

func (s *Set) rememberUnknown(kid string) {
	if len(kid) > maxUnknownKIDLen {
		return
	}
	s.unknownMu.Lock()
	defer s.unknownMu.Unlock()
	if len(s.unknown) < maxUnknownKIDs {
		s.unknown[kid] = struct{}{}
	}
}

func (s *Set) forgetUnknown() {
	s.unknownMu.Lock()
	defer s.unknownMu.Unlock()
	clear(s.unknown)
}

// Ready reports whether every source has keys and none is stale. A provider that is not
// ready may still serve keys from its fresh sources; see Set.
func (s *Set) Ready() bool {
	now := s.now().UnixNano()
	for _, src := range s.sources {
		if !src.fresh(now) {
			return false
		}
	}
	return true
}

// health names the first source that has never loaded or is stale.
func (s *Set) health() error {
	now := s.now().UnixNano()
	for _, src := range s.sources {
		switch until := src.freshUntil.Load(); {
		case until == 0:
			return fmt.Errorf("%s %s: %w", src.kind, src.name, ErrNoKeys)
		case now >= until:
			return fmt.Errorf("%s %s: %w", src.kind, src.name, ErrStale)
		}
	}
	return nil
}
