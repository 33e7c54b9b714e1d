package main

import (
	"errors"
	"net/url"

	"github.com/jwt-authz/jwt-authz/keys"
)

// onFetch logs and counts key fetches for one provider. keys never logs itself.
func (a *app) onFetch(provider string) func(keys.FetchEvent) {
	return func(ev keys.FetchEvent) {
		a.metrics.keyFetches.WithLabelValues(provider, string(ev.Result)).Inc()
		source := redact(ev.Source)
		for _, err := range ev.Skipped {
			a.metrics.keysSkipped.WithLabelValues(provider, skipReason(err)).Inc()
			a.log.Warn("key skipped", "provider", provider, "source", source, "reason", skipReason(err), "err", err)
		}
		if ev.Err != nil {
			a.log.Warn("key fetch failed", "provider", provider, "source", source, "err", ev.Err)
			return
		}
		a.log.Debug("keys fetched", "provider", provider, "source", source, "result", ev.Result, "keys", ev.Keys)
	}
}

// onDecryptionKeys logs reloads of a provider's JWE decryption key files, which are not
// verification keys and so stay out of the key metrics.
func (a *app) onDecryptionKeys(provider string) func(keys.FetchEvent) {
	return func(ev keys.FetchEvent) {
		if ev.Err != nil {
			a.log.Warn("decryption keys not reloaded", "provider", provider, "source", ev.Source, "err", ev.Err)
			return
		}
		a.log.Debug("decryption keys loaded", "provider", provider, "source", ev.Source, "keys", ev.Keys)
	}
}

// redact hides a password in a jwks_uri (https://user:secret@idp/...) before it is logged.
// File paths and URLs without one come back unchanged.
func redact(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.User == nil {
		return source
	}
	return u.Redacted()
}

// skipReasons are the label values of jwt_authz_keys_skipped_total: why a key of a fetched
// or loaded set was left out.
var skipReasons = []struct {
	err    error
	reason string
}{
	{keys.ErrUnsupportedKey, "unsupported"},
	{keys.ErrWeakKey, "weak"},
	{keys.ErrPrivateKey, "private"},
	{keys.ErrDuplicateKID, "duplicate_kid"},
	{keys.ErrMalformed, "malformed"},
}

func skipReason(err error) string {
	for _, r := range skipReasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "malformed"
}
