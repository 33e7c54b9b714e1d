package keys

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// parseSPIFFEBundle parses a SPIFFE trust bundle (SPIFFE Trust Domain and Bundle §4): a JWK
// Set whose keys each say what they verify in "use". Only "jwt-svid" keys verify JWT-SVIDs;
// "x509-svid" keys are CA certificates for X.509-SVIDs and are left out without a word, as
// the bundle is meant to carry them. spiffe_refresh_hint (seconds) is returned as hint, 0
// when absent. The jwt-svid keys then go through the same checks as any JWKS.
func parseSPIFFEBundle(data []byte, o origin) (keys []*jose.JSONWebKey, skipped []error, hint time.Duration, err error) {
	var doc struct {
		Keys        []map[string]json.RawMessage `json:"keys"`
		RefreshHint *int64                       `json:"spiffe_refresh_hint"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, 0, fmt.Errorf("SPIFFE bundle is not JSON (%v): %w", err, ErrMalformed)
	}
	if doc.Keys == nil {
		return nil, nil, 0, fmt.Errorf(`SPIFFE bundle has no "keys" array: %w`, ErrMalformed)
	}
	if h := doc.RefreshHint; h != nil && *h > 0 {
		hint = time.Duration(min(*h, 1<<31)) * time.Second
	}
	jwtKeys := make([]map[string]json.RawMessage, 0, len(doc.Keys))
	for _, k := range doc.Keys {
		var use string
		if json.Unmarshal(k["use"], &use) != nil || use != "jwt-svid" {
			continue
		}
		k["use"] = json.RawMessage(`"sig"`) // what it means for a JWS verifier
		jwtKeys = append(jwtKeys, k)
	}
	jwks, err := json.Marshal(map[string]any{"keys": jwtKeys})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("SPIFFE bundle: %v: %w", err, ErrMalformed)
	}
	keys, skipped, err = parseJWKS(jwks, o)
	return keys, skipped, hint, err
}
