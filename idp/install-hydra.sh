#!/usr/bin/env bash
# install-hydra.sh: print the path of an Ory Hydra server binary of HYDRA_VERSION (default
# below), building it first when needed. Hydra is a Go module; its source comes from the Go
# module proxy (go mod download) and is built with SQLite for its in-memory database
# (-tags sqlite, cgo). The published module leaves out the API client that the repository
# keeps in ./internal/httpclient and names in a replace directive, so the build takes that
# client's own published module (github.com/ory/hydra-client-go/v2) instead; it serves the
# CLI only, not the server. Several minutes of compiling the first time; cached under the
# user's cache after that. Everything but the path goes to stderr:
#
#   HYDRA_BIN=$(idp/install-hydra.sh)
set -euo pipefail

version="${HYDRA_VERSION:-2.3.0}"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/jwt-authz/hydra-$version"
bin="$dir/hydra"

if [[ -x "$bin" && -f "$dir/.jwt-authz-built" ]]; then
	echo "$bin"
	exit 0
fi

echo "install-hydra: building Ory Hydra $version into $dir" >&2
src=$(GOFLAGS= go mod download -json "github.com/ory/hydra/v2@v$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -d "$src" ]] || { echo "install-hydra: go mod download gave no source directory" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
tmp=$(mktemp -d "$(dirname "$dir")/hydra-build.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cp -r "$src" "$tmp/src"
chmod -R u+w "$tmp/src"
(
	cd "$tmp/src"
	go mod edit -dropreplace github.com/ory/hydra-client-go/v2
	GOFLAGS=-mod=mod CGO_ENABLED=1 go build -tags sqlite -trimpath -o "$tmp/out/hydra" . >&2
)
touch "$tmp/out/.jwt-authz-built"
rm -rf "$dir"
mv "$tmp/out" "$dir"
echo "install-hydra: $("$bin" version 2>&1 | tr -s ' \n' ' ')" >&2
echo "$bin"
