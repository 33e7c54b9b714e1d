package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testPasswords are the plaintexts of testdata/users.yaml.
var testPasswords = map[string]string{
	"alice": "alice-password",
	"admin": "admin-password",
	"bob":   "bob-password",
}

func TestLoginToken(t *testing.T) {
	tests := []struct {
		name      string
		user      string
		wantScope string
		wantRoles []string
	}{
		{"alice", "alice", "read", []string{"user"}},
		{"admin", "admin", "read admin", []string{"user", "admin"}},
		{"no scope or roles", "bob", "", []string{}},
	}
	ti := startIssuer(t, "-ttl", "10m")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			res, token := ti.login(t, tt.user, testPasswords[tt.user])
			after := time.Now()
			if res.status != http.StatusOK {
				t.Fatalf("login(%s) = %d %s, want 200", tt.user, res.status, res.body)
			}
			var tr tokenResponse
			if err := json.Unmarshal(res.body, &tr); err != nil {
				t.Fatal(err)
			}
			wantResp := tokenResponse{Token: token, AccessToken: token, TokenType: "Bearer", ExpiresIn: 600}
			if diff := cmp.Diff(wantResp, tr); diff != "" {
				t.Errorf("login(%s) body (-want +got):\n%s", tt.user, diff)
			}
			if cc := res.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("login(%s) Cache-Control = %q, want no-store", tt.user, cc)
			}

			kid, c, err := ti.verify(t, token, jose.ES256)
			if err != nil {
				t.Fatalf("verify(login(%s)) = %v", tt.user, err)
			}
			if jwks := ti.jwks(t); len(jwks.Keys) != 1 || jwks.Keys[0].KeyID != kid {
				t.Errorf("token kid %q, JWKS kids %q", kid, kids(jwks))
			}
			iat := c.IssuedAt.Time()
			if iat.Before(before) || iat.After(after) {
				t.Errorf("iat = %s, want between %s and %s", iat, before, after)
			}
			if c.ID == "" {
				t.Error("jti is empty")
			}
			want := tokenClaims{
				Claims: jwt.Claims{
					Issuer:    testIssuerURL,
					Subject:   tt.user,
					Audience:  jwt.Audience{"demo-api"},
					IssuedAt:  c.IssuedAt,
					NotBefore: c.IssuedAt,
					Expiry:    jwt.NewNumericDate(iat.Add(10 * time.Minute)),
					ID:        c.ID,
				},
				Scope: tt.wantScope,
				Roles: tt.wantRoles,
			}
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("claims of login(%s) (-want +got):\n%s", tt.user, diff)
			}
			if err := c.Validate(jwt.Expected{Issuer: testIssuerURL, AnyAudience: jwt.Audience{"demo-api"}, Time: after}); err != nil {
				t.Errorf("claims of login(%s).Validate = %v", tt.user, err)
			}
		})
	}

	t.Run("jti is unique", func(t *testing.T) {
		_, a, _ := ti.verify(t, ti.mustLogin(t, "alice", "alice-password"), jose.ES256)
		_, b, _ := ti.verify(t, ti.mustLogin(t, "alice", "alice-password"), jose.ES256)
		if a.ID == b.ID {
			t.Errorf("two logins have the same jti %q", a.ID)
		}
	})
}

func TestLoginRejects(t *testing.T) {
	ti := startIssuer(t, "-user-limit", "0", "-ip-limit", "0")
	const ctJSON = "application/json"
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		wantStatus  int
		wantError   string
	}{
		{"wrong password", "POST", ctJSON, `{"username":"alice","password":"nope"}`, 401, "invalid_grant"},
		{"unknown user", "POST", ctJSON, `{"username":"mallory","password":"nope"}`, 401, "invalid_grant"},
		{"password of another user", "POST", ctJSON, `{"username":"alice","password":"admin-password"}`, 401, "invalid_grant"},
		{"password longer than bcrypt reads", "POST", ctJSON, `{"username":"alice","password":"alice-password` + strings.Repeat("x", 100) + `"}`, 401, "invalid_grant"},
		{"empty password", "POST", ctJSON, `{"username":"alice","password":""}`, 400, "invalid_request"},
		{"missing fields", "POST", ctJSON, `{}`, 400, "invalid_request"},
		{"null", "POST", ctJSON, `null`, 400, "invalid_request"},
		{"array", "POST", ctJSON, `[]`, 400, "invalid_request"},
		{"wrong types", "POST", ctJSON, `{"username":1,"password":true}`, 400, "invalid_request"},
		{"unknown field", "POST", ctJSON, `{"username":"alice","password":"alice-password","admin":true}`, 400, "invalid_request"},
		{"two objects", "POST", ctJSON, `{"username":"alice","password":"alice-password"}{}`, 400, "invalid_request"},
		{"truncated", "POST", ctJSON, `{"username":"alice","password":"alice-pass`, 400, "invalid_request"},
		{"not JSON", "POST", ctJSON, `username=alice&password=alice-password`, 400, "invalid_request"},
		{"form content type", "POST", "application/x-www-form-urlencoded", `{"username":"alice","password":"alice-password"}`, 400, "invalid_request"},
		{"no content type", "POST", "", `{"username":"alice","password":"alice-password"}`, 400, "invalid_request"},
		{"oversized body", "POST", ctJSON, `{"username":"alice","password":"` + strings.Repeat("x", maxLoginBody) + `"}`, 400, "invalid_request"},
		{"GET", "GET", "", "", 405, "invalid_request"},
		{"PUT", "PUT", ctJSON, `{"username":"alice","password":"alice-password"}`, 405, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, tt.method, ti.public+"/login", tt.contentType, tt.body)
			var got errorResponse
			if err := json.Unmarshal(res.body, &got); err != nil {
				t.Fatalf("%s /login %.40q: body %q: %v", tt.method, tt.body, res.body, err)
			}
			if res.status != tt.wantStatus || got.Error != tt.wantError {
				t.Errorf("%s /login %.40q = %d %s, want %d %s", tt.method, tt.body, res.status, got.Error, tt.wantStatus, tt.wantError)
			}
			if tt.wantStatus == 405 && res.header.Get("Allow") != "POST" {
				t.Errorf("%s /login: Allow = %q, want POST", tt.method, res.header.Get("Allow"))
			}
		})
	}

	t.Run("charset parameter is fine", func(t *testing.T) {
		res := do(t, "POST", ti.public+"/login", "application/json; charset=utf-8", `{"username":"alice","password":"alice-password"}`)
		if res.status != http.StatusOK {
			t.Errorf("login with charset = %d %s, want 200", res.status, res.body)
		}
	})

	t.Run("oversized body says so", func(t *testing.T) {
		res := do(t, "POST", ti.public+"/login", ctJSON, strings.Repeat(" ", maxLoginBody+1)+"{}")
		if !bytes.Contains(res.body, []byte("larger than 4096 bytes")) {
			t.Errorf("oversized /login = %d %s, want a description of the size limit", res.status, res.body)
		}
	})

	// No user enumeration: a wrong password and an unknown user get byte-identical answers.
	t.Run("wrong password and unknown user look the same", func(t *testing.T) {
		wrong, _ := ti.login(t, "alice", "not-alices-password")
		unknown, _ := ti.login(t, "mallory", "not-alices-password")
		ignore := cmpopts.IgnoreMapEntries(func(k string, _ []string) bool { return k == "Date" })
		if diff := cmp.Diff(wrong, unknown, cmp.AllowUnexported(response{}), ignore); diff != "" {
			t.Errorf("wrong password vs unknown user (-wrong +unknown):\n%s", diff)
		}
		want := `{"error":"invalid_grant","error_description":"invalid username or password"}` + "\n"
		if wrong.status != http.StatusUnauthorized || string(wrong.body) != want {
			t.Errorf("wrong password = %d %s, want 401 %s", wrong.status, wrong.body, want)
		}
	})
}

func TestLoginRateLimit(t *testing.T) {
	t.Run("per user then per client", func(t *testing.T) {
		ti := startIssuer(t, "-user-limit", "2", "-ip-limit", "4")
		steps := []struct {
			user, password string
			want           int
		}{
			{"alice", "wrong-1", 401},
			{"alice", "wrong-2", 401},
			{"alice", "alice-password", 429}, // the right password does not lift the limit
			{"bob", "wrong-3", 401},          // another name has its own budget...
			{"bob", "bob-password", 429},     // ...but the client's 4 are spent
		}
		for i, s := range steps {
			res, _ := ti.login(t, s.user, s.password)
			if res.status != s.want {
				t.Fatalf("attempt %d: login(%s) = %d %s, want %d", i+1, s.user, res.status, res.body, s.want)
			}
			if s.want != 429 {
				continue
			}
			ra, err := strconv.Atoi(res.header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 60 {
				t.Errorf("attempt %d: Retry-After = %q, want 1..60 seconds", i+1, res.header.Get("Retry-After"))
			}
			var e errorResponse
			if err := json.Unmarshal(res.body, &e); err != nil || e.Error != "too_many_requests" {
				t.Errorf("attempt %d: body %s, want error too_many_requests", i+1, res.body)
			}
		}
	})

	t.Run("X-Forwarded-For from a trusted proxy", func(t *testing.T) {
		ti := startIssuer(t, "-user-limit", "0", "-ip-limit", "1", "-trusted-proxies", "127.0.0.0/8")
		steps := []struct {
			xff  string
			want int
		}{
			{"192.0.2.1", 401},
			{"192.0.2.1", 429},
			{"192.0.2.2", 401},
			{"192.0.2.1, 192.0.2.2", 429}, // only the last hop counts: the first is the client's say
			{"192.0.2.2, 192.0.2.3", 401},
		}
		for i, s := range steps {
			res, _ := ti.login(t, "alice", "wrong", "X-Forwarded-For", s.xff)
			if res.status != s.want {
				t.Errorf("attempt %d: login with X-Forwarded-For %q = %d, want %d", i+1, s.xff, res.status, s.want)
			}
		}
	})

	t.Run("X-Forwarded-For from anyone else is ignored", func(t *testing.T) {
		ti := startIssuer(t, "-user-limit", "0", "-ip-limit", "1")
		for i, want := range []int{401, 429} {
			res, _ := ti.login(t, "alice", "wrong", "X-Forwarded-For", "192.0.2."+strconv.Itoa(i))
			if res.status != want {
				t.Errorf("attempt %d: login = %d, want %d", i+1, res.status, want)
			}
		}
	})
}

// newTestIssuer is an issuer without listeners, limits or log, for handler-level tests.
func newTestIssuer(t testing.TB) *issuer {
	t.Helper()
	users, err := loadUsers("testdata/users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := generateKey(jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := newKeyring(priv, jose.ES256, time.Minute, 0, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{
		iss: testIssuerURL, audience: "demo-api", ttl: time.Minute,
		users: users, keys: keys,
		userLimit: newLimiter(0, time.Now), ipLimit: newLimiter(0, time.Now),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now,
	}
}

// FuzzLogin feeds arbitrary bodies and content types to POST /login. Invariants: no panic,
// only 200/400/401, always a JSON body, and a 200 only for a body that names a user with
// their right password, with a token for that user signed by the served key.
func FuzzLogin(f *testing.F) {
	for _, seed := range []struct{ ct, body string }{
		{"application/json", `{"username":"alice","password":"alice-password"}`},
		{"application/json", `{"username":"alice","password":"wrong"}`},
		{"application/json", `{"USERNAME":"bob","Password":"bob-password"}`},
		{"application/json", `{"username":"admin","password":"admin-password","username":"alice"}`},
		{"application/json; charset=utf-8", `{"username":"mallory","password":"x"}`},
		{"application/json", `{"username":"alice","password":"alice-password"} {}`},
		{"application/json", `{"username":"alice\u0000","password":"alice-password"}`},
		{"text/plain", `{"username":"alice","password":"alice-password"}`},
		{"application/json", `[{"username":"alice"}]`},
		{"application/json", "\xff\xfe{}"},
		{"", ""},
	} {
		f.Add(seed.ct, []byte(seed.body))
	}
	s := newTestIssuer(f)
	pub := s.keys.public()[0]

	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		s.handleLogin(rec, req)

		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized:
		default:
			t.Fatalf("login(%q, %q) = %d, want 200, 400 or 401", contentType, body, rec.Code)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("login(%q, %q) body %q is not JSON", contentType, body, rec.Body)
		}
		if rec.Code != http.StatusOK {
			return
		}
		var sent loginRequest
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("login(%q, %q) = 200 for a body that is not a login request: %v", contentType, body, err)
		}
		if want, ok := testPasswords[sent.Username]; !ok || sent.Password != want {
			t.Fatalf("login(%q, %q) = 200 without the right password", contentType, body)
		}
		var tr tokenResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.ParseSigned(tr.AccessToken, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		var c jwt.Claims
		if err := tok.Claims(pub.Key, &c); err != nil || c.Subject != sent.Username {
			t.Fatalf("login(%q) token: sub %q, err %v; want sub %q", body, c.Subject, err, sent.Username)
		}
	})
}
