package config

import (
	"strings"
	"testing"
)

func TestEncryption(t *testing.T) {
	parse := func(enc string) error {
		_, err := Parse([]byte(strings.Replace(minimal, "  clock_skew: 30s", "  clock_skew: 30s\n  encryption: "+enc, 1)), t.TempDir())
		return err
	}
	if err := parse(`{required: true, key_algorithms: [RSA-OAEP-256, ECDH-ES+A256KW, dir], content_encryptions: [A256GCM], keys: [{pem_file: enc.pem}, {jwks_file: enc.json}, {hmac_secret_file: dir.key, kid: d}]}`); err != nil {
		t.Fatalf("Parse(encryption) = %v", err)
	}
	const at = "providers[0].encryption"
	for _, tc := range []struct{ enc, want string }{
		{`{content_encryptions: [A256GCM], keys: [{pem_file: k}]}`, at + ".key_algorithms"},
		{`{key_algorithms: [RSA1_5], content_encryptions: [A256GCM], keys: [{pem_file: k}]}`, at + ".key_algorithms[0]"},
		{`{key_algorithms: [RSA-OAEP-256, none], content_encryptions: [A256GCM], keys: [{pem_file: k}]}`, at + ".key_algorithms[1]"},
		{`{key_algorithms: [dir], keys: [{pem_file: k}]}`, at + ".content_encryptions"},
		{`{key_algorithms: [dir], content_encryptions: [A256CTR], keys: [{pem_file: k}]}`, at + ".content_encryptions[0]"},
		{`{key_algorithms: [dir], content_encryptions: [A256GCM]}`, at + ".keys"},
		{`{key_algorithms: [dir], content_encryptions: [A256GCM], keys: [{jwks_uri: "https://idp/jwks"}]}`, at + ".keys[0]"},
		{`{key_algorithms: [dir], content_encryptions: [A256GCM], keys: [{discovery: true}]}`, at + ".keys[0]"},
		{`{key_algorithms: [dir], content_encryptions: [A256GCM], keys: [{hmac_secret_file: k}]}`, at + ".keys[0].kid"},
		{`{key_algorithms: [dir], content_encryptions: [A256GCM], keys: [{pem_file: k}], zip: DEF}`, at + ".zip"},
	} {
		if err := parse(tc.enc); err == nil || !strings.Contains(err.Error(), tc.want+":") {
			t.Errorf("Parse(encryption: %s) = %v, want an error naming %s", tc.enc, err, tc.want)
		}
	}
}
