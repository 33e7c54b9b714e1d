#!/usr/bin/env bash
# find-java.sh: print the path of a java binary of version 21 or newer (Keycloak 26 needs it).
# Tried in order: $JAVA_HOME, java on PATH, then every JDK under /usr/lib/jvm, newest first.
# Exits 1 with a message on stderr when there is none.
set -euo pipefail

major() { # the feature version of a java binary, e.g. 17 or 25; 0 when it does not run
	"$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | sed -n 1p | grep . || echo 0
}

candidates=()
[[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME/bin/java")
command -v java >/dev/null && candidates+=("$(command -v java)")
for j in $(ls -d /usr/lib/jvm/*/bin/java 2>/dev/null | sort -rV); do candidates+=("$j"); done

for j in "${candidates[@]}"; do
	if [[ -x "$j" ]] && (($(major "$j") >= 21)); then
		echo "$j"
		exit 0
	fi
done
echo "find-java: no Java 21 or newer (tried: ${candidates[*]:-none}); Keycloak 26 needs one" >&2
exit 1
