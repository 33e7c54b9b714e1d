package main

import "github.com/jwt-authz/jwt-authz/keys"

// onFetch logs and counts key fetches for one provider. keys never logs itself.
func (a *app) onFetch(provider string) func(keys.FetchEvent) {
	return func(ev keys.FetchEvent) {
		a.metrics.keyFetches.WithLabelValues(provider, string(ev.Result)).Inc()
		if ev.Err != nil {
			a.log.Warn("key fetch failed", "provider", provider, "source", ev.Source, "err", ev.Err)
			return
		}
		a.log.Debug("keys fetched", "provider", provider, "source", ev.Source, "result", ev.Result, "keys", ev.Keys)
	}
}
