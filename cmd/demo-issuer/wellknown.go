package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksMaxAge is how long verifiers and caches may keep the JWKS. A new key is published
// -publish-delay before it signs; a delay of at least this long lets every verifier that
// honours Cache-Control see the key before its first token.
const jwksMaxAge = 60 * time.Second

// handleJWKS is GET /.well-known/jwks.json: the public keys (RFC 7517 §5), with an ETag so
// that a verifier polling for rotations gets a 304 while nothing changed.
func (s *issuer) handleJWKS(w http.ResponseWriter, r *http.Request) {
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: s.keys.public()})
	if err != nil {
		s.log.Error("encoding the JWKS", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorResponse{"server_error", ""})
		return
	}
	sum := sha256.Sum256(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "max-age="+strconv.Itoa(int(jwksMaxAge/time.Second)))
	h.Set("ETag", `"`+base64.RawURLEncoding.EncodeToString(sum[:16])+`"`)
	// ServeContent answers If-None-Match (RFC 9110 §13.1.2) with 304, and HEAD.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// discovery is the subset of OpenID Connect Discovery 1.0 §3 that describes this issuer.
// There is no authorization endpoint: tokens come from /login, not from a browser flow.
type discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	TokenEndpoint                    string   `json:"token_endpoint"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	ClaimsSupported                  []string `json:"claims_supported"`
}

func newDiscovery(iss string, alg jose.SignatureAlgorithm) discovery {
	// OIDC Discovery §4: the document lives at issuer + /.well-known/..., so the other
	// URLs are built the same way, under the issuer's path.
	base := strings.TrimSuffix(iss, "/")
	return discovery{
		Issuer:                           iss,
		JWKSURI:                          base + "/.well-known/jwks.json",
		TokenEndpoint:                    base + "/login",
		IDTokenSigningAlgValuesSupported: []string{string(alg)},
		ResponseTypesSupported:           []string{"token"},
		SubjectTypesSupported:            []string{"public"},
		ClaimsSupported:                  []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "roles"},
	}
}

// handleDiscovery is GET /.well-known/openid-configuration.
func (s *issuer) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "max-age=3600")
	writeJSON(w, http.StatusOK, newDiscovery(s.iss, s.keys.alg))
}

// handleRotate is POST /rotate on the admin listener: publish a new key now, sign with it
// after the publish delay, withdraw the current one once its tokens have expired.
func (s *issuer) handleRotate(w http.ResponseWriter, r *http.Request) {
	rot, err := s.keys.rotate()
	switch {
	case errors.Is(err, errRotationPending):
		writeJSON(w, http.StatusConflict, errorResponse{"rotation_pending", err.Error()})
		return
	case err != nil:
		s.log.Error("rotating the signing key", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorResponse{"server_error", ""})
		return
	}
	s.log.Info("key rotated", "trigger", "admin", "kid", rot.KID, "signing_from", rot.SigningFrom,
		"previous_kid", rot.PreviousKID, "previous_withdrawn_at", rot.PreviousWithdrawnAt)
	writeJSON(w, http.StatusOK, rot)
}

func handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
