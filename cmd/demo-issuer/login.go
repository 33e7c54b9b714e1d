package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// maxLoginBody bounds a /login body; a username and a password fit many times over.
const maxLoginBody = 4 << 10

// issuer is the login service: it checks passwords and mints tokens.
type issuer struct {
	iss      string
	audience string
	ttl      time.Duration
	users    *userDB
	keys     *keyring
	// userLimit and ipLimit bound login attempts per submitted username and per client.
	userLimit *limiter
	ipLimit   *limiter
	trusted   []netip.Prefix // proxies whose X-Forwarded-For is believed
	cookie    string         // -cookie: the session cookie's name; "" turns cookie sessions off
	log       *slog.Logger
	now       func() time.Time
	encrypter jose.Encrypter // -encrypt: access tokens become nested JWTs; nil signs only
}

// loginRequest is the body of POST /login.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Cookie asks for the token in an HttpOnly cookie (see cookie.go) instead of the body.
	Cookie bool `json:"cookie,omitempty"`
}

// tokenResponse is the body of a successful login. Its fields follow RFC 6749 §5.1, plus
// `token` (the same string as access_token) for clients that want a shorter name.
type tokenResponse struct {
	Token       string `json:"token,omitempty"`
	AccessToken string `json:"access_token,omitempty"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	// Cookie names the cookie that holds the token, for a cookie login; the body then
	// carries no token at all.
	Cookie string `json:"cookie,omitempty"`
}

// errorResponse is the body of every error, shaped like RFC 6749 §5.2.
type errorResponse struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// handleLogin is POST /login: {"username","password"} in, a signed JWT out.
func (s *issuer) handleLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorResponse{"invalid_request", "use POST"})
		return
	}
	// The client limit comes first, before any parsing, so that malformed requests count too.
	client := clientKey(r, s.trusted)
	if ok, wait := s.ipLimit.allow(client); !ok {
		s.log.Warn("login rate limited", "limit", "client", "client", client)
		tooManyAttempts(w, wait)
		return
	}

	req, err := parseLogin(w, r)
	if err == nil && req.Cookie && s.cookie == "" {
		err = errors.New("cookie sessions are off (demo-issuer -cookie)")
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{"invalid_request", err.Error()})
		return
	}

	// Limited per submitted name, known or not: limiting only known users would answer
	// unknown ones differently and tell an attacker which names exist.
	if ok, wait := s.userLimit.allow(req.Username); !ok {
		s.log.Warn("login rate limited", "limit", "user", "client", client)
		tooManyAttempts(w, wait)
		return
	}

	u, ok := s.users.authenticate(req.Username, req.Password)
	if !ok {
		// The username is logged only when it is an account: a failed login's "username"
		// is sometimes the password typed into the wrong field.
		attrs := []any{"reason", "invalid_credentials", "client", client}
		if s.users.known(req.Username) {
			attrs = append(attrs, "user", req.Username)
		}
		s.log.Info("login failed", attrs...)
		// The same answer for a wrong password and an unknown user (no enumeration).
		writeJSON(w, http.StatusUnauthorized, errorResponse{"invalid_grant", "invalid username or password"})
		return
	}

	token, kid, jti, err := s.mint(u)
	if err != nil {
		s.log.Error("minting a token", "user", u.Username, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorResponse{"server_error", ""})
		return
	}
	s.log.Info("login", "sub", u.Username, "kid", kid, "jti", jti, "client", client)
	// RFC 6749 §5.1: a response carrying a token must not be cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if req.Cookie {
		http.SetCookie(w, sessionCookie(s.cookie, token, s.ttl))
		writeJSON(w, http.StatusOK, tokenResponse{TokenType: "Bearer", ExpiresIn: int(s.ttl / time.Second), Cookie: s.cookie})
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		Token:       token,
		AccessToken: token,
		TokenType:   "Bearer",
		ExpiresIn:   int(s.ttl / time.Second),
	})
}

// parseLogin reads a /login body strictly: JSON only, one object, known fields only, both
// fields present, at most maxLoginBody bytes. Its errors are safe to show the client: they
// never echo the input.
func parseLogin(w http.ResponseWriter, r *http.Request) (loginRequest, error) {
	var req loginRequest
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return req, errors.New("Content-Type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxLoginBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, bodyError(err)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		if err == nil {
			return req, errors.New("body must be a single JSON object")
		}
		return req, bodyError(err)
	}
	if req.Username == "" || req.Password == "" {
		return req, errors.New("username and password are required")
	}
	return req, nil
}

func bodyError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return fmt.Errorf("body larger than %d bytes", maxLoginBody)
	}
	return errors.New(`body must be a JSON object {"username": string, "password": string}`)
}

// mint signs an access token for u with the current key.
func (s *issuer) mint(u user) (token, kid, jti string, err error) {
	signer, kid := s.keys.signer()
	now := s.now()
	jti = rand.Text() // 128 bits from crypto/rand
	claims := jwt.Claims{
		Issuer:    s.iss,
		Subject:   u.Username,
		Audience:  jwt.Audience{s.audience},
		Expiry:    jwt.NewNumericDate(now.Add(s.ttl)),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ID:        jti,
	}
	extra := map[string]any{"roles": u.Roles}
	if u.Scope != "" {
		extra["scope"] = u.Scope
	}
	token, err = jwt.Signed(signer).Claims(claims).Claims(extra).Serialize()
	if err != nil {
		return "", "", "", fmt.Errorf("signing with kid %q: %w", kid, err)
	}
	if s.encrypter != nil {
		obj, err := s.encrypter.Encrypt([]byte(token))
		if err != nil {
			return "", "", "", fmt.Errorf("encrypting: %w", err)
		}
		if token, err = obj.CompactSerialize(); err != nil {
			return "", "", "", fmt.Errorf("encrypting: %w", err)
		}
	}
	return token, kid, jti, nil
}

func tooManyAttempts(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
	writeJSON(w, http.StatusTooManyRequests, errorResponse{"too_many_requests", "too many login attempts; retry later"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do about it
}
