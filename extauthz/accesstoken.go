package extauthz

import (
	"fmt"
	"slices"
)

// idTokenMarker names what makes c an evident OpenID Connect ID token, or "" when nothing
// does. An ID token says who logged in to a client; presented to an API it is a cross-JWT
// confusion (RFC 8725 §3.11, §3.12), often signed by the same keys as the IdP's access
// tokens and carrying the client in aud. The markers are claims only ID tokens carry:
// at_hash and c_hash (OpenID Connect Core §3.1.3.6, §3.3.2.11), nonce (§2: echoed into the
// ID token; Keycloak 25+ no longer copies it into access tokens), Keycloak's typ "ID" and
// Cognito's token_use "id".
func idTokenMarker(c map[string]any) string {
	for _, name := range []string{"at_hash", "c_hash", "nonce"} {
		if _, ok := c[name]; ok {
			return name + " present"
		}
	}
	if c["typ"] == "ID" {
		return `typ claim "ID"`
	}
	if c["token_use"] == "id" {
		return `token_use "id"`
	}
	return ""
}

// checkAccessToken applies what makes a verified token an access token of this provider:
// its required_claims, its audience (from audience_claims) and its authorized party.
func (p *provider) checkAccessToken(c map[string]any) error {
	for _, rc := range p.requiredClaims {
		v, ok := rc.path.Lookup(c)
		if !ok || !valueAllowed(v, rc.values) {
			return errRequiredClaim
		}
	}
	ok := false
	for _, path := range p.audienceClaims {
		v, _ := path.Lookup(c)
		auds, err := audienceValues(v)
		if err != nil {
			return err
		}
		ok = ok || slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(p.audiences, a) })
	}
	if !ok {
		return errAudience
	}
	if len(p.authorizedParties) > 0 {
		azp, ok := c["azp"].(string)
		if _, present := c["azp"]; !present {
			azp, ok = c["client_id"].(string) // RFC 9068 §2.2, Cognito
		}
		if !ok || !slices.Contains(p.authorizedParties, azp) {
			return errAuthorizedParty
		}
	}
	return nil
}

// audienceValues reads an audience claim: absent, a string, or an array of strings. Any
// other shape, an array with a non-string element included, is malformed (RFC 7519
// §4.1.3): accepting it would let one verifier read what another ignores.
func audienceValues(v any) ([]string, error) {
	switch a := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{a}, nil
	case []any:
		out := make([]string, 0, len(a))
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%w: audience array holds a non-string", errClaims)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: audience is neither a string nor an array of strings", errClaims)
}

// audienceAllowed reports whether id carries one of audiences in its provider's
// audience_claims (a rule's require.audiences).
func audienceAllowed(id *identity, audiences []string) bool {
	for _, i := range id.provider.audienceIndexes {
		auds, _ := audienceValues(id.claim(i)) // malformed ones were refused at verification
		if slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(audiences, a) }) {
			return true
		}
	}
	return false
}

// checkTenant: a token from an issuer template must name the same tenant in its tenant
// claim as in its iss (Entra ID: tid), so a tenant's token cannot pass for another's, and
// that tenant must be allowed.
func (p *provider) checkTenant(c map[string]any, tenant string) error {
	v, _ := p.tenantClaim.Lookup(c)
	if s, ok := v.(string); !ok || s != tenant {
		return fmt.Errorf("%w: iss names tenant %q", errTenantMismatch, truncate(tenant, 64))
	}
	if len(p.tenants) > 0 && !slices.Contains(p.tenants, tenant) {
		return fmt.Errorf("%w: %q", errTenantNotAllowed, truncate(tenant, 64))
	}
	return nil
}
