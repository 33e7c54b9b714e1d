package keys

import "time"

// Kind is the kind of a key source: the config field that declared it.
type Kind string

// Kinds, one per config.Key field.
const (
	KindJWKSFile         Kind = "jwks_file"
	KindPEMFile          Kind = "pem_file"
	KindHMACSecretFile   Kind = "hmac_secret_file"
	KindJWKSURI          Kind = "jwks_uri"
	KindDiscovery        Kind = "discovery"
	KindSPIFFEBundleURI  Kind = "spiffe_bundle_uri"
	KindSPIFFEBundleFile Kind = "spiffe_bundle_file"
)

// Result is the outcome of one fetch or file reload. The values are a closed set, fit for a
// metric label.
type Result string

// Results.
const (
	ResultOK          Result = "ok"           // new keys installed (possibly the same ones)
	ResultNotModified Result = "not_modified" // 304 to If-None-Match: keys kept, a good fetch
	ResultError       Result = "error"        // nothing installed; the last good keys stay
)

// Trigger says why a fetch or reload ran; a closed set, fit for a metric label.
type Trigger string

// Triggers.
const (
	TriggerInitial    Trigger = "initial"     // Start, or NewSet for files
	TriggerRefresh    Trigger = "refresh"     // the background schedule (interval or backoff)
	TriggerUnknownKID Trigger = "unknown_kid" // Lookup saw a kid it did not hold
	TriggerFileChange Trigger = "file_change" // a watched file changed on disk
)

// FetchEvent is what Options.OnFetch hears after every remote fetch and file reload. It
// holds facts about the source only, never key material, so the caller may log all of it.
type FetchEvent struct {
	Kind Kind
	// Source is the configured path or URL; for discovery, the discovery document's URL.
	Source string
	// URL is the JWKS URL that was fetched (the discovered one for discovery); empty for
	// files.
	URL     string
	Trigger Trigger
	Result  Result
	// Err is why Result is ResultError; nil otherwise.
	Err error
	// Skipped lists the keys of a fetched set that were left out and why (weak, duplicate
	// kid, private, unsupported). The rest of the set was used.
	Skipped []error
	// Keys is how many keys the source holds after the event.
	Keys int
	// Next is the delay until the next scheduled fetch of a remote source: the refresh
	// interval after a good fetch, the backoff after a failed one. Zero for files.
	Next time.Duration
}

// Status is a Set's state, for readiness and metrics.
type Status struct {
	// Ready is Ready().
	Ready bool
	// Keys is how many keys the Set holds, stale ones included.
	Keys    int
	Sources []SourceStatus
}

// SourceStatus is the state of one key source.
type SourceStatus struct {
	Kind   Kind
	Source string
	// Keys is how many keys the source holds.
	Keys int
	// LastGood is when the source last loaded or confirmed (304) its keys; zero if never.
	LastGood time.Time
	// Stale is true when a remote source's LastGood is older than its max_stale.
	Stale bool
	// LastErr is the error of the latest fetch or reload, nil if it went well.
	LastErr error
}
