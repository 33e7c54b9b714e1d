package main

import (
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jwt-authz/jwt-authz/extauthz"
)

// metrics are the jwt_authz_* series. Label values come from closed sets: reason codes,
// configured provider names, fixed results. Never from request input.
type metrics struct {
	decisions *prometheus.CounterVec
	// counters caches decisions' children by label set: WithLabelValues hashes the labels
	// on every call, and this runs once per Check.
	counters     sync.Map // decisionLabels -> prometheus.Counter
	duration     prometheus.Histogram
	keyFetches   *prometheus.CounterVec
	keysSkipped  *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	cacheLookups *prometheus.CounterVec
	shadow       *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, a *app) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz", Name: "decisions_total",
			Help: "Decisions by front door (grpc, envoy_http, auth_request, forward_auth), provider, decision and reason.",
		}, []string{"front", "provider", "decision", "reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "jwt_authz", Name: "check_duration_seconds",
			Help:    "Time to decide one Check, inside the server.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3},
		}),
		keyFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz", Name: "key_fetches_total",
			Help: "Key fetches and file reloads by provider and result.",
		}, []string{"provider", "result"}),
		keysSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz", Name: "keys_skipped_total",
			Help: "Keys left out of a fetched or loaded set (unusable, weak, private, conflicting kid), by provider and reason.",
		}, []string{"provider", "reason"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz", Name: "token_cache_lookups_total",
			Help: "Verified tokens answered from the cache (hit) or verified afresh (miss).",
		}, []string{"result"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz", Name: "shadow_decisions_total",
			Help: "Would-be decisions of shadow rules (mode: shadow) and of a policy in shadow, by rule, decision and reason.",
		}, []string{"rule", "decision", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz", Name: "config_reloads_total",
			Help: "Config reloads by result.",
		}, []string{"result"}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "jwt_authz", Name: "build_info", Help: "Build information.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	reg.MustRegister(m.decisions, m.shadow, m.duration, m.keyFetches, m.keysSkipped, m.reloads, m.cacheLookups, buildInfo,
		&keyCollector{app: a},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"ok", "error"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

func (m *metrics) observe(d extauthz.Decision, elapsed time.Duration) {
	decision := "deny"
	if d.Allowed {
		decision = "allow"
	}
	key := decisionLabels{d.Front, d.Provider, decision, d.Reason}
	c, ok := m.counters.Load(key)
	if !ok {
		c, _ = m.counters.LoadOrStore(key, m.decisions.WithLabelValues(string(d.Front), d.Provider, decision, string(d.Reason)))
	}
	c.(prometheus.Counter).Inc()
	if d.Issuer != "" { // a verified identity: from the cache or freshly verified
		if d.Cached {
			m.cacheLookups.WithLabelValues("hit").Inc()
		} else {
			m.cacheLookups.WithLabelValues("miss").Inc()
		}
	}
	if d.ShadowDecision != "" { // rule names come from the config: a closed set
		m.shadow.WithLabelValues(d.ShadowRule, d.ShadowDecision, string(d.ShadowReason)).Inc()
	}
	m.duration.Observe(elapsed.Seconds())
}

// decisionLabels is one label set of jwt_authz_decisions_total (closed sets: fronts,
// provider names, allow/deny, reasons).
type decisionLabels struct {
	front              extauthz.Front
	provider, decision string
	reason             extauthz.Reason
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// keyCollector reports each provider's key state at scrape time.
type keyCollector struct{ app *app }

var (
	keysHeldDesc = prometheus.NewDesc("jwt_authz_keys", "Verification keys held, by provider.", []string{"provider"}, nil)
	keyAgeDesc   = prometheus.NewDesc("jwt_authz_key_last_success_age_seconds",
		"Seconds since the provider's keys were last fetched or loaded successfully.", []string{"provider"}, nil)
	keysReadyDesc = prometheus.NewDesc("jwt_authz_keys_ready", "1 when the provider's keys can verify tokens.", []string{"provider"}, nil)
	cacheSizeDesc = prometheus.NewDesc("jwt_authz_token_cache_entries", "Verified tokens held in the cache.", nil, nil)
)

func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keysHeldDesc
	ch <- keyAgeDesc
	ch <- keysReadyDesc
	ch <- cacheSizeDesc
}

func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	inst := c.app.cur.Load()
	if inst == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(cacheSizeDesc, prometheus.GaugeValue, float64(inst.policy.CachedTokens()))
	for name, set := range inst.sets {
		st := set.Status()
		ch <- prometheus.MustNewConstMetric(keysHeldDesc, prometheus.GaugeValue, float64(st.Keys), name)
		ready := 0.0
		if set.Ready() {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(keysReadyDesc, prometheus.GaugeValue, ready, name)
		// The provider is as fresh as its stalest source.
		var oldest time.Time
		for _, src := range st.Sources {
			if !src.LastGood.IsZero() && (oldest.IsZero() || src.LastGood.Before(oldest)) {
				oldest = src.LastGood
			}
		}
		if !oldest.IsZero() {
			ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, time.Since(oldest).Seconds(), name)
		}
	}
}
