//go:build jwtauthz_paniccheck

package main

import "github.com/jwt-authz/jwt-authz/extauthz"

// Built only by envoy's TestModulePanic (go build -tags jwtauthz_paniccheck), never into a
// library users load: a request carrying x-jwt-authz-test-panic panics inside the
// request-headers hook, so the test sees the recovery answer 500, count the panic and leave
// Envoy serving.
func init() {
	testPanic = func(req *extauthz.Request) {
		for _, h := range req.Headers {
			if h.Name == "x-jwt-authz-test-panic" {
				panic("jwt-authz: test panic in the request-headers hook")
			}
		}
	}
}
