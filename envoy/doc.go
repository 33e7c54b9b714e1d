// Package envoy holds the demo's Envoy and jwt-authz configuration (envoy.yaml, jwt-authz.yaml,
// mounted as is by ../docker-compose.yaml) and the tests that keep them honest: config checks
// that need no Docker (envoy --mode validate, the compose file, the Dockerfile, the README's
// Envoy snippet) and end-to-end tests that drive a real Envoy in front of the real jwt-authz,
// demo-issuer and demo-upstream: the demo's scenarios, key rotation under load, a rolling
// restart of two replicas, and TLS with client certificates between Envoy and jwt-authz.
//
// The package has no code of its own; everything else here is a _test.go file.
package envoy
