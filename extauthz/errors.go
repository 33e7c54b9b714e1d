package extauthz

import (
	"errors"
	"net/http"
)

// Sentinel errors, one per outcome the decision branches on. Each maps to exactly one
// Reason, which is the word that appears in the response body, the dynamic metadata, the log
// line and the metric label.
var (
	// errMultipleTokens: the request carries more than one credential (RFC 6750 §2: 400).
	errMultipleTokens = errors.New("extauthz: more than one credential in the request")
	// errTokenTooLarge: the credential is over max_token_bytes.
	errTokenTooLarge = errors.New("extauthz: credential too large")
	// errMalformed: not a compact JWS with strict base64url segments and JSON objects.
	errMalformed = errors.New("extauthz: malformed token")
	// errUnknownIssuer: the unverified iss names no configured provider.
	errUnknownIssuer = errors.New("extauthz: unknown issuer")
	// errProviderNotAllowed: the issuer's provider is not accepted by the matched rule, or
	// the credential came from a source that provider does not read.
	errProviderNotAllowed = errors.New("extauthz: issuer not accepted here")
	// errAlgorithm: alg is none, not in the provider's allowlist, or not one the key may use.
	errAlgorithm = errors.New("extauthz: algorithm not allowed")
	// errHeader: the JOSE header asks for something we refuse (crit, b64, zip).
	errHeader = errors.New("extauthz: unsupported JOSE header")
	// errType: typ is present and not an accepted JWT media type.
	errType = errors.New("extauthz: unsupported typ")
	// errUnknownKey: no configured key has the token's kid.
	errUnknownKey = errors.New("extauthz: unknown signing key")
	// errSignature: the signature does not verify.
	errSignature = errors.New("extauthz: invalid signature")
	// errClaims: a registered claim has the wrong type, or the payload is not valid.
	errClaims = errors.New("extauthz: malformed claims")
	// errMissingExp: exp is absent and the provider requires it.
	errMissingExp = errors.New("extauthz: exp claim required")
	// errExpired: exp is in the past beyond the clock skew.
	errExpired = errors.New("extauthz: token expired")
	// errNotYetValid: nbf is in the future beyond the clock skew.
	errNotYetValid = errors.New("extauthz: token not yet valid")
	// errIssuedInFuture: iat is in the future beyond the clock skew.
	errIssuedInFuture = errors.New("extauthz: token issued in the future")
	// errLifetime: exp is further from iat than max_lifetime.
	errLifetime = errors.New("extauthz: token lifetime too long")
	// errAudience: aud names none of the provider's audiences.
	errAudience = errors.New("extauthz: audience not accepted")
	// errIDToken: an OpenID Connect ID token presented as an access token (RFC 8725 §3.11).
	errIDToken = errors.New("extauthz: an ID token is not an access token")
	// errRequiredClaim: a provider's required_claims entry does not hold.
	errRequiredClaim = errors.New("extauthz: required claim missing or not accepted")
	// errAuthorizedParty: azp (or client_id) is absent or not in authorized_parties.
	errAuthorizedParty = errors.New("extauthz: authorized party not accepted")
	// errTenantMismatch: the tenant id in an issuer template's iss is not the tenant claim.
	errTenantMismatch = errors.New("extauthz: tenant in iss does not match the tenant claim")
	// errTenantNotAllowed: the tenant is not in the provider's tenants.
	errTenantNotAllowed = errors.New("extauthz: tenant not accepted")
	// errTrustDomain: a JWT-SVID's sub is not a SPIFFE ID of its provider's trust domain.
	errTrustDomain = errors.New("extauthz: SPIFFE ID not in the provider's trust domain")
	// errKeysUnavailable: the provider cannot vouch for any key right now (fail closed, 503).
	errKeysUnavailable = errors.New("extauthz: keys unavailable")
)

// Reason is the closed set of words that explain a decision.
type Reason string

// Reasons. Allow reasons first.
const (
	ReasonAllowed         Reason = "allowed"         // a valid token satisfied the rule
	ReasonAnonymous       Reason = "anonymous"       // optional rule, no credential
	ReasonPublic          Reason = "public"          // rule action allow
	ReasonDefaultAllow    Reason = "default_allow"   // no rule matched, default_action allow
	ReasonNonHTTPAllow    Reason = "non_http_allow"  // TCP check allowed by non_http_action
	ReasonShadowAllow     Reason = "shadow_allow"    // shadow: true, and the policy would deny
	ReasonMissingToken    Reason = "missing_token"   // 401, no error code (RFC 6750 §3.1)
	ReasonMultipleTokens  Reason = "multiple_tokens" // 400 invalid_request
	ReasonTokenTooLarge   Reason = "token_too_large" // 401 invalid_token
	ReasonMalformedToken  Reason = "malformed_token" // 401 invalid_token
	ReasonUnknownIssuer   Reason = "unknown_issuer"  // 401
	ReasonIssuerNotHere   Reason = "issuer_not_allowed"
	ReasonAlgorithm       Reason = "algorithm_not_allowed"
	ReasonHeader          Reason = "unsupported_header"
	ReasonType            Reason = "unsupported_type"
	ReasonUnknownKey      Reason = "unknown_key"
	ReasonSignature       Reason = "invalid_signature"
	ReasonClaims          Reason = "malformed_claims"
	ReasonMissingExp      Reason = "missing_exp"
	ReasonExpired         Reason = "expired"
	ReasonNotYetValid     Reason = "not_yet_valid"
	ReasonIssuedInFuture  Reason = "issued_in_future"
	ReasonLifetime        Reason = "lifetime_too_long"
	ReasonAudience        Reason = "audience_not_allowed"
	ReasonIDToken         Reason = "id_token"                     // 401, an OIDC ID token
	ReasonRequiredClaim   Reason = "required_claim"               // 401, provider required_claims
	ReasonAuthorizedParty Reason = "authorized_party_not_allowed" // 401, azp not allowed
	ReasonTenantMismatch  Reason = "tenant_mismatch"              // 401, iss tenant != tenant claim
	ReasonTenantNotHere   Reason = "tenant_not_allowed"           // 401, tenant not in tenants
	ReasonTrustDomain     Reason = "trust_domain_mismatch"        // 401, SVID sub outside the trust domain
	ReasonSPIFFEID        Reason = "spiffe_id_not_allowed"        // 403, require.spiffe_ids
	ReasonScope           Reason = "insufficient_scope"           // 403
	ReasonClaimMismatch   Reason = "claim_mismatch"               // 403
	ReasonCSRF            Reason = "csrf_origin"                  // 403, a cookie token on a cross-site unsafe request
	ReasonCELDenied       Reason = "cel_denied"                   // 403, require.cel was false
	ReasonCELError        Reason = "cel_error"                    // 403, a CEL condition failed to evaluate
	ReasonRuleDeny        Reason = "rule_deny"                    // 403
	ReasonNoRule          Reason = "no_matching_rule"             // 403 default deny
	ReasonNonHTTPDeny     Reason = "non_http_deny"                // 403, TCP check
	ReasonKeysUnavailable Reason = "keys_unavailable"             // 503
	ReasonInternal        Reason = "internal_error"               // 500, a bug: fail closed
	ReasonBadRequest      Reason = "malformed_request"            // 400, the CheckRequest itself does not decode
	ReasonUntrustedProxy  Reason = "untrusted_proxy"              // 403, forwarded request details from a peer not trusted to send them
)

// Reasons lists every reason, for metrics that pre-declare their label values.
var Reasons = []Reason{
	ReasonAllowed, ReasonAnonymous, ReasonPublic, ReasonDefaultAllow, ReasonNonHTTPAllow, ReasonShadowAllow,
	ReasonMissingToken, ReasonMultipleTokens, ReasonTokenTooLarge, ReasonMalformedToken,
	ReasonUnknownIssuer, ReasonIssuerNotHere, ReasonAlgorithm, ReasonHeader, ReasonType,
	ReasonUnknownKey, ReasonSignature, ReasonClaims, ReasonMissingExp, ReasonExpired,
	ReasonNotYetValid, ReasonIssuedInFuture, ReasonLifetime, ReasonAudience,
	ReasonIDToken, ReasonRequiredClaim, ReasonAuthorizedParty, ReasonTenantMismatch,
	ReasonTenantNotHere, ReasonTrustDomain, ReasonSPIFFEID, ReasonScope,
	ReasonClaimMismatch, ReasonCSRF, ReasonCELDenied, ReasonCELError, ReasonRuleDeny, ReasonNoRule, ReasonNonHTTPDeny,
	ReasonKeysUnavailable, ReasonInternal, ReasonBadRequest, ReasonUntrustedProxy,
	ReasonNotBound, ReasonCertificateMissing, ReasonCertificateMismatch,
	ReasonUnknownDecryptionKey, ReasonDecryption, ReasonEncryptionRequired, ReasonEncryptedForOther,
	ReasonDPoPProofMissing, ReasonDPoPProof, ReasonDPoPMismatch, ReasonDPoPStale, ReasonDPoPReplay,
	ReasonDPoPNonce, ReasonDPoPKey, ReasonDPoPAsBearer, ReasonDPoPRequired, ReasonReplayUnavailable,
	ReasonInactive, ReasonIntrospectionUnavailable,
}

// tokenErrors maps each token error to its reason and the RFC 6750 description sent back.
var tokenErrors = []struct {
	err    error
	reason Reason
	desc   string
}{
	{errMultipleTokens, ReasonMultipleTokens, "more than one credential in the request"},
	{errTokenTooLarge, ReasonTokenTooLarge, "the token is too large"},
	{errMalformed, ReasonMalformedToken, "the token is malformed"},
	{errUnknownIssuer, ReasonUnknownIssuer, "the token issuer is not trusted"},
	{errProviderNotAllowed, ReasonIssuerNotHere, "the token issuer is not accepted for this resource"},
	{errAlgorithm, ReasonAlgorithm, "the token signing algorithm is not allowed"},
	{errHeader, ReasonHeader, "the token header is not supported"},
	{errType, ReasonType, "the token type is not supported"},
	{errUnknownKey, ReasonUnknownKey, "the token signing key is unknown"},
	{errSignature, ReasonSignature, "the token signature is invalid"},
	{errClaims, ReasonClaims, "the token claims are malformed"},
	{errMissingExp, ReasonMissingExp, "the token has no expiry"},
	{errExpired, ReasonExpired, "the token has expired"},
	{errNotYetValid, ReasonNotYetValid, "the token is not yet valid"},
	{errIssuedInFuture, ReasonIssuedInFuture, "the token was issued in the future"},
	{errLifetime, ReasonLifetime, "the token lifetime is too long"},
	{errAudience, ReasonAudience, "the token audience is not accepted"},
	{errIDToken, ReasonIDToken, "an ID token is not an access token"},
	{errRequiredClaim, ReasonRequiredClaim, "the token is not an access token for this resource"},
	{errAuthorizedParty, ReasonAuthorizedParty, "the token's client is not accepted"},
	{errTenantMismatch, ReasonTenantMismatch, "the token's issuer and tenant disagree"},
	{errTenantNotAllowed, ReasonTenantNotHere, "the token's tenant is not accepted"},
	{errNotBound, ReasonNotBound, "the token must be bound to a client certificate"},
	{errCertificateMissing, ReasonCertificateMissing, "the token is bound to a client certificate and none was presented"},
	{errCertificateMismatch, ReasonCertificateMismatch, "the token is bound to another client certificate"},
	{errTrustDomain, ReasonTrustDomain, "the token's SPIFFE ID is not in the trust domain"},
	{errUnknownDecryptionKey, ReasonUnknownDecryptionKey, "the token decryption key is unknown"},
	{errDecryption, ReasonDecryption, "the token does not decrypt"},
	{errEncryptionRequired, ReasonEncryptionRequired, "the token must be encrypted"},
	{errEncryptedForOther, ReasonEncryptedForOther, "the token is encrypted to another issuer's key"},
	{errDPoPProofMissing, ReasonDPoPProofMissing, "a DPoP proof is required"},
	{errDPoPProof, ReasonDPoPProof, "the DPoP proof is invalid"},
	{errDPoPMismatch, ReasonDPoPMismatch, "the DPoP proof is for another request or token"},
	{errDPoPStale, ReasonDPoPStale, "the DPoP proof is too old or from the future"},
	{errDPoPReplay, ReasonDPoPReplay, "the DPoP proof was already used"},
	{errDPoPNonce, ReasonDPoPNonce, "the DPoP proof must carry the server nonce"},
	{errDPoPKey, ReasonDPoPKey, "the DPoP proof key is not the one the token is bound to"},
	{errDPoPAsBearer, ReasonDPoPAsBearer, "a DPoP-bound token must be sent with the DPoP scheme"},
	{errDPoPRequired, ReasonDPoPRequired, "a DPoP-bound token is required"},
	{errReplayUnavailable, ReasonReplayUnavailable, "DPoP replay checks are temporarily unavailable"},
	{errKeysUnavailable, ReasonKeysUnavailable, "signing keys are temporarily unavailable"},
	{errInactive, ReasonInactive, "the token is not active"},
	{errIntrospectionUnavailable, ReasonIntrospectionUnavailable, "token introspection is temporarily unavailable"},
}

// denialFor turns a token error into the denial Envoy relays to the client.
func denialFor(err error) denial {
	for _, te := range tokenErrors {
		if errors.Is(err, te.err) {
			d := denial{reason: te.reason, httpStatus: http.StatusUnauthorized, code: "invalid_token", desc: te.desc}
			switch te.err {
			case errMultipleTokens:
				d.httpStatus, d.code = http.StatusBadRequest, "invalid_request"
			case errKeysUnavailable, errIntrospectionUnavailable:
				d.httpStatus, d.code = http.StatusServiceUnavailable, "temporarily_unavailable"
			}
			return d
		}
	}
	return denial{reason: ReasonMalformedToken, httpStatus: http.StatusUnauthorized, code: "invalid_token", desc: "the token is malformed"}
}
