// Package dpopsetup reads a config's dpop section into the Policy options that serve it:
// the server nonce secrets and the shared replay store. The server and the in-process
// module both use it, so both enforce the same DPoP settings.
package dpopsetup

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/extauthz"
	"github.com/jwt-authz/jwt-authz/replay"
)

// minNonceSecret is the least length of a DPoP nonce secret: an HMAC-SHA256 key.
const minNonceSecret = 32

// Options reads what cfg's dpop section needs: the nonce secrets (one per line, the first
// makes nonces) and the replay store. close releases the store's connections; it is nil
// when there is no store.
func Options(cfg *config.Config) (opts []extauthz.PolicyOption, close func(), err error) {
	if n := cfg.DPoP.Nonce; n != nil {
		data, err := os.ReadFile(cfg.Path(n.SecretFile))
		if err != nil {
			return nil, nil, fmt.Errorf("dpop.nonce.secret_file: %w", err)
		}
		var secrets [][]byte
		for line := range bytes.Lines(data) {
			if line = bytes.TrimRight(line, "\r\n"); len(line) == 0 {
				continue
			}
			if len(line) < minNonceSecret {
				// Never quote the content: it is the secret.
				return nil, nil, fmt.Errorf("dpop.nonce.secret_file: a secret of %d bytes, want at least %d", len(line), minNonceSecret)
			}
			secrets = append(secrets, line)
		}
		if len(secrets) == 0 {
			return nil, nil, fmt.Errorf("dpop.nonce.secret_file: %s holds no secret", n.SecretFile)
		}
		opts = append(opts, extauthz.WithDPoPNonceSecrets(secrets))
	}
	if rs := cfg.DPoP.ReplayStore; rs != nil {
		password := ""
		if rs.PasswordFile != "" {
			b, err := os.ReadFile(cfg.Path(rs.PasswordFile))
			if err != nil {
				return nil, nil, fmt.Errorf("dpop.replay_store.password_file: %w", err)
			}
			password = strings.TrimRight(string(b), "\r\n")
		}
		store := replay.NewRedis(replay.Options{Address: rs.Address, Password: password, DB: rs.DB, Timeout: rs.Timeout.D()})
		opts = append(opts, extauthz.WithReplayStore(store))
		close = func() { store.Close() }
	}
	return opts, close, nil
}
