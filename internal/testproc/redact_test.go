package testproc

import "testing"

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"Authorization":["Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"]}`, `{"Authorization":["Bearer <redacted>"]}`},
		{`cut eyJhbGciOiJFUzI1NiJ9.eyJzd`, `cut <jwt redacted>`},
		{`authorization: bearer opaque-token-123`, `authorization: bearer <redacted>`},
		{`nothing to hide`, `nothing to hide`},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
