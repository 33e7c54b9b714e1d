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
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w" -o /out/ ./cmd/jwt-authz ./cmd/demo-issuer ./cmd/demo-upstream

# Static binaries need no libc: distroless/static has CA roots, tzdata and a nonroot user only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
EXPOSE 9001 9002 8080 8081
CMD ["/usr/local/bin/jwt-authz", "-config", "/etc/jwt-authz/jwt-authz.yaml"]
