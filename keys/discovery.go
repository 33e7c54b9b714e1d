package keys

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// discover fetches the issuer's OpenID Provider Configuration (OpenID Connect Discovery 1.0
// §4) and sets r.jwksURI from it. It runs before every JWKS fetch, conditional on its ETag,
// so a provider that moves its jwks_uri is followed at the next refresh.
func (r *remote) discover(ctx context.Context) error {
	resp, err := r.get(ctx, r.discoveryURL, r.discETag)
	if err != nil {
		return err
	}
	if resp.notModified {
		return nil
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		return fmt.Errorf("%s: not JSON (%v): %w", r.discoveryURL, err, ErrMalformed)
	}
	// §4.3: the issuer must be identical to the one the configuration was asked for, or a
	// provider could vouch for keys of an issuer it is not.
	if doc.Issuer != r.issuer {
		return fmt.Errorf("%s names issuer %q, want %q: %w", r.discoveryURL, clip(doc.Issuer), r.issuer, ErrIssuerMismatch)
	}
	if err := checkHTTPURL(doc.JWKSURI); err != nil {
		return fmt.Errorf("%s: jwks_uri %q: %w", r.discoveryURL, clip(doc.JWKSURI), err)
	}
	// Keys learned over TLS are not to be fetched without it.
	if u, _ := url.Parse(r.discoveryURL); u.Scheme == "https" {
		if j, _ := url.Parse(doc.JWKSURI); j.Scheme != "https" {
			return fmt.Errorf("%s: jwks_uri %q is not https: %w", r.discoveryURL, clip(doc.JWKSURI), ErrMalformed)
		}
	}
	r.jwksURI, r.discETag = doc.JWKSURI, resp.etag
	return nil
}
