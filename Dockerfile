# syntax=docker/dockerfile:1
# One image for the three demo binaries (jwt-authz, demo-issuer, demo-upstream);
# docker-compose.yaml picks the binary per service with "command".

# Pinned to go.mod's go line (envoy/compose_test.go checks they agree).
FROM golang:1.26.8 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# jwt-authz -version prints these: docker build --build-arg VERSION=v0.1.0 --build-arg COMMIT=$(git rev-parse --short HEAD)
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/ ./cmd/jwt-authz ./cmd/demo-issuer ./cmd/demo-upstream

# Static binaries need no libc: distroless/static has CA roots, tzdata and a nonroot user only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
EXPOSE 9001 9002 8080 8081
# For the default command (jwt-authz): ready once every provider has keys. Compose sets its own
# per service.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD ["/usr/local/bin/jwt-authz", "-healthcheck", "http://127.0.0.1:9002/readyz"]
CMD ["/usr/local/bin/jwt-authz", "-config", "/etc/jwt-authz/jwt-authz.yaml"]
