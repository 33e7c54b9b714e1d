package testproc

import "regexp"

// Logs and bodies that reach the test output never carry a credential, whatever a process
// under test printed or echoed: anything shaped like a JWS (or the start of one) and any
// Bearer credential is replaced.
var (
	jwtLike    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){0,2}`)
	bearerLike = regexp.MustCompile(`(?i)(bearer\s+)[^\s"',;]+`)
)

// Redact replaces the credentials in s (see jwtLike and bearerLike).
func Redact(s string) string {
	return jwtLike.ReplaceAllString(bearerLike.ReplaceAllString(s, "${1}<redacted>"), "<jwt redacted>")
}
