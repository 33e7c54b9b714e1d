// Package deploy holds the files that run jwt-authz on a cluster, and the tests that keep
// them honest without one:
//
//	kubernetes/          plain manifests, applied with kubectl apply -k
//	helm/jwt-authz/      a Helm chart that renders the same objects from values
//	istio/               the meshConfig extension provider and a CUSTOM AuthorizationPolicy
//	envoy-gateway/       a SecurityPolicy with gRPC extAuth, and its routes
//
// The tests decode every manifest strictly into the real API types (Kubernetes, Istio,
// Envoy Gateway, Gateway API, Prometheus Operator), render the chart with Helm's own engine
// and compare it with the kustomize base, and run the server's config through
// "jwt-authz -check". This is a module of its own so that those API types stay out of the
// server's go.mod; run it with "cd deploy && go test ./...".
//
// The package has no code of its own; everything else here is a _test.go file.
package deploy
