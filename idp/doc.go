// Package idp runs real identity providers on 127.0.0.1 for the end-to-end tests: Keycloak
// (from Maven Central), node oidc-provider (from npm) and Ory Hydra (built from its Go
// module), installed into ~/.cache/jwt-authz by the scripts beside this file and driven through their own HTTP APIs. jwt-authz must accept
// these providers' tokens as they really are, so the tests meet the real thing rather than
// fixtures shaped after its documentation.
//
// Each provider is one process per test binary: start it once (TestMain, or a sync.Once) and
// give each test its own realm or client.
package idp
