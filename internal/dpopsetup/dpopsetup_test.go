package dpopsetup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jwt-authz/jwt-authz/config"
)

// TestNonceSecrets: the nonce secret file holds one secret per line (blank lines skipped);
// a short secret or none at all is an error that never quotes the file's content; no dpop
// section gives no options and nothing to close.
func TestNonceSecrets(t *testing.T) {
	dir := t.TempDir()
	load := func(content string) (int, error) {
		path := filepath.Join(dir, "nonce.key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := &config.Config{}
		cfg.DPoP.Nonce = &config.DPoPNonce{SecretFile: path}
		opts, close, err := Options(cfg)
		if close != nil {
			t.Error("a close func without a replay store")
		}
		return len(opts), err
	}
	long := strings.Repeat("s", 32)
	if n, err := load(long + "\n\n" + strings.Repeat("t", 40) + "\r\n"); n != 1 || err != nil {
		t.Errorf("two secrets: %d options, %v; want 1, nil", n, err)
	}
	short := "tooshort-but-secret"
	if _, err := load(short + "\n"); err == nil || strings.Contains(err.Error(), short) {
		t.Errorf("a short secret: %v; want an error that does not quote it", err)
	}
	if _, err := load("\n\n"); err == nil {
		t.Error("no secret: no error")
	}
	if opts, close, err := Options(&config.Config{}); len(opts) != 0 || close != nil || err != nil {
		t.Errorf("no dpop section: %d options, close %v, %v", len(opts), close != nil, err)
	}
}
