package keys

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/jwt-authz/jwt-authz/config"
)

// These tests use the real clock and filesystem: the watcher waits in a system call,
// which a synctest bubble cannot see through. They wait for an outcome, never time it.

const fileWait = 10 * time.Second // generous: only reached when the test fails

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(fileWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func jwksJSON(t *testing.T, keys ...jose.JSONWebKey) []byte {
	return mustJSON(t, jose.JSONWebKeySet{Keys: keys})
}

func TestFileReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	k1 := ecJWK(t, "k1")
	writeAtomic(t, path, jwksJSON(t, k1))
	rec := &recorder{}
	s, err := NewSet("https://issuer.test", []config.Key{{JWKSFile: "jwks.json"}},
		func(p string) string { return filepath.Join(dir, p) }, Options{OnFetch: rec.on})
	if err != nil {
		t.Fatal(err)
	}
	s.pollInterval = time.Hour // the watcher must do it
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	before, _, _ := s.Lookup(ctx, "k1")

	// Atomic rename-over, adding k2.
	writeAtomic(t, path, jwksJSON(t, k1, ecJWK(t, "k2")))
	waitFor(t, "k2 after a rename-over", func() bool { _, found, _ := s.Lookup(ctx, "k2"); return found })
	if after, _, _ := s.Lookup(ctx, "k1"); after != before {
		t.Error("unchanged key k1 got a new pointer after a file reload")
	}

	// A corrupt file keeps the old keys and is reported.
	writeAtomic(t, path, []byte(`{"keys":[{"kty":"RSA"`))
	waitFor(t, "a reload error", func() bool { return rec.last().Result == ResultError })
	if ev := rec.last(); !errors.Is(ev.Err, ErrMalformed) || ev.Trigger != TriggerFileChange || ev.Keys != 2 {
		t.Errorf("event = %+v, want a malformed-file error with 2 keys kept", ev)
	}
	if diff := cmp.Diff([]string{"k1", "k2"}, kids(s)); diff != "" {
		t.Errorf("kids after a corrupt file (-want +got):\n%s", diff)
	}

	// A weak key is refused the same way.
	writeAtomic(t, path, mustRead(t, testdata("jwks-weak.json")))
	waitFor(t, "a weak-key error", func() bool { return errors.Is(rec.last().Err, ErrWeakKey) })

	// Removed, then back with k1 withdrawn.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a missing-file error", func() bool { return errors.Is(rec.last().Err, os.ErrNotExist) })
	writeAtomic(t, path, jwksJSON(t, ecJWK(t, "k3")))
	waitFor(t, "k3", func() bool { _, found, _ := s.Lookup(ctx, "k3"); return found })
	if _, found, err := s.Lookup(ctx, "k1"); found || err != nil {
		t.Errorf("Lookup(k1) after it left the file = %v, %v; want not found", found, err)
	}
	if !s.Ready() {
		t.Error("Ready() = false")
	}
}

// A Kubernetes ConfigMap or Secret volume: the file is a symlink through ..data, and an
// update swaps ..data to a new timestamped directory.
func TestFileReloadConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "..2026_01_01"), filepath.Join(dir, "..2026_01_02")
	for _, d := range []string{v1, v2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeAtomic(t, filepath.Join(v1, "secret"), []byte("0123456789abcdef0123456789abcdef"))
	writeAtomic(t, filepath.Join(v2, "secret"), []byte("fedcba9876543210fedcba9876543210"))
	mustSymlink(t, filepath.Base(v1), filepath.Join(dir, "..data"))
	mustSymlink(t, filepath.Join("..data", "secret"), filepath.Join(dir, "secret"))

	s, err := NewSet("https://issuer.test", []config.Key{{HMACSecretFile: filepath.Join(dir, "secret"), KID: "h"}}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.pollInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	before, _, _ := s.Lookup(ctx, "h")

	tmp := filepath.Join(dir, "..data_tmp")
	mustSymlink(t, filepath.Base(v2), tmp)
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the swapped secret", func() bool { k, _, _ := s.Lookup(ctx, "h"); return k != before })
	k, _, _ := s.Lookup(ctx, "h")
	if got := string(k.Key.([]byte)); got != "fedcba9876543210fedcba9876543210" {
		t.Error("after the ..data swap the secret is not the new one")
	}
}

// Without a watcher (inotify unavailable, or out of watches) the poll finds the change.
func TestFilePoll(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	writeAtomic(t, path, mustRead(t, testdata("rsa2048.pem")))
	s, err := NewSet("https://issuer.test", []config.Key{{PEMFile: path, KID: "p"}}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.pollInterval = 20 * time.Millisecond
	s.newWatcher = func() (*fsnotify.Watcher, error) { return nil, errors.New("no inotify here") }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	before, _, _ := s.Lookup(ctx, "p")
	writeAtomic(t, path, mustRead(t, testdata("ed25519.pem")))
	waitFor(t, "the polled change", func() bool { k, _, _ := s.Lookup(ctx, "p"); return k != before })
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
