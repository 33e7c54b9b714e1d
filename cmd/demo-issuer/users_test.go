package main

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

const hashCost4 = "$2a$04$FcUM4vbkLIOzMttcn7HbOulsoWmvQXC3K13a63SH8yRbxMmd.d8Qu" // alice-password

func TestParseUsers(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantErr string // empty: must load
	}{
		{"yaml", "users:\n  - {username: a, password_hash: '" + hashCost4 + "', scope: read, roles: [user]}\n", ""},
		{"json", `{"users": [{"username": "a", "password_hash": "` + hashCost4 + `"}]}`, ""},
		{"unknown key", "users:\n  - {username: a, password_hash: '" + hashCost4 + "', role: [user]}\n", "field role not found"},
		{"unknown top-level key", "users: []\ngroups: []\n", "field groups not found"},
		{"empty file", "", "empty file"},
		{"no users", "users: []\n", "at least one user"},
		{"no username", "users:\n  - {password_hash: '" + hashCost4 + "'}\n", "users[0].username: must not be empty"},
		{"padded username", "users:\n  - {username: ' a', password_hash: '" + hashCost4 + "'}\n", "users[0].username"},
		{"duplicate", "users:\n  - {username: a, password_hash: '" + hashCost4 + "'}\n  - {username: a, password_hash: '" + hashCost4 + "'}\n", "users[1].username"},
		{"plaintext password", "users:\n  - {username: a, password_hash: hunter2}\n", "users[0].password_hash: not a bcrypt hash"},
		{"empty role", "users:\n  - {username: a, password_hash: '" + hashCost4 + "', roles: ['']}\n", "users[0].roles[0]"},
		{"two documents", "users:\n  - {username: a, password_hash: '" + hashCost4 + "'}\n---\nusers: []\n", "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseUsers([]byte(tt.file))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("parseUsers(%q) = %v, want nil", tt.file, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("parseUsers(%q) = %v, want an error containing %q", tt.file, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("parseUsers error %q echoes the password field", err)
			}
		})
	}
}

// The dummy hash for unknown users must cost as much as the dearest real one, or an
// unknown user would answer measurably faster.
func TestDummyHashCost(t *testing.T) {
	hash5, err := bcrypt.GenerateFromPassword([]byte("x"), 5)
	if err != nil {
		t.Fatal(err)
	}
	db, err := parseUsers([]byte("users:\n  - {username: a, password_hash: '" + hashCost4 + "'}\n  - {username: b, password_hash: '" + string(hash5) + "'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost(db.dummyHash); err != nil || cost != 5 {
		t.Errorf("dummy hash cost = %d (%v), want 5", cost, err)
	}
}

// The shipped users.yaml is what the README and docker-compose use: it must load and its
// comment must tell the truth about the passwords.
func TestShippedUsers(t *testing.T) {
	db, err := loadUsers("users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, password string
		wantScope      string
		wantRoles      []string
	}{
		{"alice", "alice-password", "read", []string{"user"}},
		{"admin", "admin-password", "read admin", []string{"user", "admin"}},
	}
	for _, tt := range tests {
		u, ok := db.authenticate(tt.user, tt.password)
		if !ok || u.Scope != tt.wantScope || strings.Join(u.Roles, ",") != strings.Join(tt.wantRoles, ",") {
			t.Errorf("authenticate(%s, %s) = %+v, %v; want scope %q roles %q", tt.user, tt.password, u, ok, tt.wantScope, tt.wantRoles)
		}
	}
	if len(db.byName) != len(tests) {
		t.Errorf("users.yaml has %d users, want %d", len(db.byName), len(tests))
	}
}
