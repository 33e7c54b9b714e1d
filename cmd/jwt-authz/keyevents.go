package main

import (
	"net/url"

	"github.com/jwt-authz/jwt-authz/keys"
)

// onFetch logs and counts key fetches for one provider. keys never logs itself.
func (a *app) onFetch(provider string) func(keys.FetchEvent) {
	return func(ev keys.FetchEvent) {
		a.metrics.keyFetches.WithLabelValues(provider, string(ev.Result)).Inc()
		source := redact(ev.Source)
		if ev.Err != nil {
			a.log.Warn("key fetch failed", "provider", provider, "source", source, "err", ev.Err)
			return
		}
		a.log.Debug("keys fetched", "provider", provider, "source", source, "result", ev.Result, "keys", ev.Keys)
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
