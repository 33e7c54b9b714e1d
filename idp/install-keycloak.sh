#!/usr/bin/env bash
# install-keycloak.sh: print the home directory of a Keycloak server of KEYCLOAK_VERSION
# (default below), installing it first when needed. Keycloak comes from Maven Central as
# org.keycloak:keycloak-quarkus-dist (fetched with mvn, which checks the repository's
# checksums; the zip's SHA-256 is pinned here too), and is unpacked and built once for an
# in-memory database under the user's cache, so a second run costs nothing. It needs Java 21+
# (find-java.sh). Everything but the path goes to stderr:
#
#   KEYCLOAK_HOME=$(idp/install-keycloak.sh)
set -euo pipefail

version="${KEYCLOAK_VERSION:-26.5.6}"
sha256=490189d9dff05272432d51f71a069462eeca97f2920a694d539a1e6c26a5a347 # of 26.5.6's zip
cache="${XDG_CACHE_HOME:-$HOME/.cache}/jwt-authz"
home="$cache/keycloak-$version"
zip="$cache/dl/keycloak-quarkus-dist-$version.zip"
# The build-time options the tests start Keycloak with (kc.sh start --optimized): a database
# in memory and local caches, so concurrent test processes (idp/ and envoy/) neither share a
# database nor look for each other to form a cluster, as the default cache stack would.
build_opts=(--db=dev-mem --cache=local --health-enabled=true)
marker="$home/.jwt-authz-built"

if [[ -f "$marker" && "$(cat "$marker")" == "${build_opts[*]}" && -x "$home/bin/kc.sh" ]]; then
	echo "$home"
	exit 0
fi

java=$("$(dirname "$0")/find-java.sh")
export JAVA_HOME
JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$java")")")

if [[ ! -f "$zip" ]]; then
	echo "install-keycloak: fetching org.keycloak:keycloak-quarkus-dist:$version:zip" >&2
	m2="$cache/m2"
	mvn -q -B -C -Dmaven.repo.local="$m2" dependency:get \
		-Dartifact="org.keycloak:keycloak-quarkus-dist:$version:zip" -Dtransitive=false >&2
	mkdir -p "$(dirname "$zip")"
	cp "$m2/org/keycloak/keycloak-quarkus-dist/$version/keycloak-quarkus-dist-$version.zip" "$zip.tmp"
	mv "$zip.tmp" "$zip"
fi
if [[ "$version" == 26.5.6 ]] && ! echo "$sha256  $zip" | sha256sum -c --quiet - >&2; then
	echo "install-keycloak: $zip does not have the pinned SHA-256; removed it" >&2
	rm -f "$zip"
	exit 1
fi

echo "install-keycloak: unpacking and building Keycloak $version into $home" >&2
tmp=$(mktemp -d "$cache/keycloak-unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unzip -q "$zip" -d "$tmp"
"$tmp/keycloak-$version/bin/kc.sh" build "${build_opts[@]}" >&2
echo "${build_opts[*]}" >"$tmp/keycloak-$version/.jwt-authz-built"
rm -rf "$home"
mv "$tmp/keycloak-$version" "$home"
echo "$home"
