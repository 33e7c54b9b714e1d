# make test   Envoy (installed on first use, see envoy/install-envoy.sh), then every test
#             with the race detector; the end-to-end tests in envoy/ run the real Envoy;
#             packages are compiled in parallel but tested one at a time (-p 1): the
#             end-to-end packages pick free ports and start processes on them, and two such
#             packages at once could take each other's ports (and share 2 cores);
#             idp/ runs a real Keycloak, node oidc-provider and Ory Hydra (installed on first use);
#             then the deploy/ module (Kubernetes, Helm, Istio, Envoy Gateway manifests),
#             kept separate so the server's module carries no Kubernetes dependencies.
# make demo   the whole demo natively on 127.0.0.1 (envoy/run-demo.sh); Ctrl-C stops it.
# make build  the three binaries into ./bin, stamped with the version and commit.
# make screenshots  reruns TestBrowser (headless Chromium) and saves its screenshots of the
#             demo page into docs/browser.
# make module the in-process Envoy dynamic module, bin/libjwt_authz.so (docs/in-process.md):
#             Envoy 1.40 loads it from $ENVOY_DYNAMIC_MODULES_SEARCH_PATH. Needs cgo (gcc).
#             make test also runs its Go side against stand-ins for Envoy's callbacks: its
#             tests and its benchmark once (go test -tags jwtauthz_stubs -bench
#             RequestHeaders ./envoy/module/).
# make bench  benchmarks (bench/run.sh, about 10 min; QUICK=1 for a smoke run): rewrites
#             docs/benchmarks.md and docs/benchmarks/*.png.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go
GOTESTFLAGS ?=
# jwt-authz -version prints these, as in the Dockerfile's build.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

.PHONY: test vet build module demo envoy bench screenshots
test:
	@envoy_bin="$$(envoy/install-envoy.sh)"; \
	echo "ENVOY_BIN=$$envoy_bin"; \
	$(GO) test -race -count=1 -exec /bin/true ./... >/dev/null; \
	ENVOY_BIN="$$envoy_bin" $(GO) test -race -p 1 -timeout 15m $(GOTESTFLAGS) ./...
	$(GO) test -tags jwtauthz_stubs -bench RequestHeaders -benchtime 200x -benchmem ./envoy/module/
	cd deploy && $(GO) test -race -vet=all -timeout 10m $(GOTESTFLAGS) ./...

vet:
	$(GO) vet ./...
	$(GO) vet -tags jwtauthz_stubs ./envoy/module/

build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" \
		-o bin/ ./cmd/jwt-authz ./cmd/demo-issuer ./cmd/demo-upstream

module:
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -o bin/libjwt_authz.so ./envoy/module

demo:
	VERSION="$(VERSION)" COMMIT="$(COMMIT)" envoy/run-demo.sh

# Print the path of the Envoy the tests use, installing it if needed.
envoy:
	@envoy/install-envoy.sh

bench:
	bench/run.sh

screenshots:
	@envoy_bin="$$(envoy/install-envoy.sh)"; \
	ENVOY_BIN="$$envoy_bin" JWT_AUTHZ_SCREENSHOTS=docs/browser $(GO) test -count=1 -run '^TestBrowser$$' ./envoy
