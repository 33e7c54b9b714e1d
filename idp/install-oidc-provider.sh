#!/usr/bin/env bash
# install-oidc-provider.sh: print a directory holding node_modules with the oidc-provider
# pinned by oidc-provider/package-lock.json, installing it first when needed (npm ci from the
# npm registry). The directory under the user's cache is named by a hash of package.json and
# package-lock.json, so a changed lock file gets a fresh install. Everything but the path
# goes to stderr:
#
#   OIDC_PROVIDER_DIR=$(idp/install-oidc-provider.sh)
set -euo pipefail

src="$(cd "$(dirname "$0")" && pwd)/oidc-provider"
hash=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/jwt-authz/oidc-provider-$hash"

if [[ -f "$dir/.jwt-authz-installed" ]]; then
	echo "$dir"
	exit 0
fi

echo "install-oidc-provider: npm ci into $dir" >&2
mkdir -p "$(dirname "$dir")"
tmp=$(mktemp -d "$(dirname "$dir")/oidc-provider-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$src/package.json" "$src/package-lock.json" "$tmp/"
(cd "$tmp" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
touch "$tmp/.jwt-authz-installed"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
