package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// usersFile is the shape of the -users file. JSON is valid YAML, so either works.
type usersFile struct {
	Users []user `yaml:"users"`
}

// user is one account. The fields after PasswordHash go into the token as they are.
type user struct {
	Username string `yaml:"username"`
	// PasswordHash is a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from
	// `htpasswd -nbBC 10 "" password | cut -d: -f2`.
	PasswordHash string `yaml:"password_hash"`
	// Scope is space-delimited (RFC 8693 §4.2) and becomes the `scope` claim.
	Scope string   `yaml:"scope"`
	Roles []string `yaml:"roles"`
}

// userDB answers password checks in the same time whether or not the user exists.
type userDB struct {
	byName map[string]user
	// dummyHash is compared against when the username is unknown, so that an unknown user
	// costs the same bcrypt work as a wrong password (no user enumeration by timing). It
	// has the highest cost found in the file: a cheaper dummy would be measurably faster.
	dummyHash []byte
}

// loadUsers reads and validates a users file.
func loadUsers(path string) (*userDB, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	db, err := parseUsers(b)
	if err != nil {
		return nil, fmt.Errorf("users: %s: %w", path, err)
	}
	return db, nil
}

func parseUsers(b []byte) (*userDB, error) {
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error, not a silently missing field
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file")
		}
		return nil, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if len(f.Users) == 0 {
		return nil, errors.New("users: must list at least one user")
	}

	db := &userDB{byName: make(map[string]user, len(f.Users))}
	maxCost := bcrypt.MinCost
	for i, u := range f.Users {
		switch {
		case u.Username == "":
			return nil, fmt.Errorf("users[%d].username: must not be empty", i)
		case strings.TrimSpace(u.Username) != u.Username:
			return nil, fmt.Errorf("users[%d].username: must not start or end with spaces", i)
		}
		if _, dup := db.byName[u.Username]; dup {
			return nil, fmt.Errorf("users[%d].username: %q is listed twice", i, u.Username)
		}
		cost, err := bcrypt.Cost([]byte(u.PasswordHash))
		if err != nil {
			// Never echo the hash itself: it is a secret too.
			return nil, fmt.Errorf("users[%d].password_hash: not a bcrypt hash: %w", i, err)
		}
		maxCost = max(maxCost, cost)
		for j, r := range u.Roles {
			if r == "" {
				return nil, fmt.Errorf("users[%d].roles[%d]: must not be empty", i, j)
			}
		}
		if u.Roles == nil {
			u.Roles = []string{} // always an array in the token, so rules need not handle null
		}
		u.Scope = strings.Join(strings.Fields(u.Scope), " ")
		db.byName[u.Username] = u
	}

	dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), maxCost)
	if err != nil {
		return nil, fmt.Errorf("dummy hash: %w", err)
	}
	db.dummyHash = dummy
	return db, nil
}

// authenticate returns the user whose username and password match. It does one bcrypt
// comparison on every path, so a wrong password and an unknown user take the same time.
func (db *userDB) authenticate(username, password string) (user, bool) {
	u, known := db.byName[username]
	hash := db.dummyHash
	if known {
		hash = []byte(u.PasswordHash)
	}
	// bcrypt reads only the first 72 bytes of a password; a longer one would match any
	// password sharing that prefix, so it never matches here (after the same work).
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if err != nil || !known || len(password) > 72 {
		return user{}, false
	}
	return u, true
}

// known reports whether username is an account (for logging only: never in a response).
func (db *userDB) known(username string) bool {
	_, ok := db.byName[username]
	return ok
}
