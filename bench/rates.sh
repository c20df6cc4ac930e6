#!/usr/bin/env bash
# Small-request rates and one-client hits, hubcache and nginx in alternated
# rounds, measured by bench/load.cpp (hubcache-load: microsecond latencies, HEAD
# without waiting for a body), against a test bed that is already running:
#
#   bench/rates.sh [RESULTS_DIR]
#
# bench/run.sh calls it after its main rounds (with its results directory); on its
# own it needs the bed up (hub, seed, nginx, hubcache; bench/README.md) and writes
# to $TESTBED_DIR/results/hubcache-rates-<time>/, then prints report.py's table.
#
# Each round runs every target (the order alternates: hubcache nginx, then nginx
# hubcache, ...), each target in turn:
#   a warm GET of the manifest and of the 20 MB blob (curl, checked: 200),
#   rate_manifest_head  HEAD of the manifest by digest, 32 connections, 2 threads
#   rate_manifest_get   GET of it, the same
#   rate_hit_1client    GET of the 20 MB blob, 1 connection, 1 thread
# each for RATE_SECONDS, into rates-<target>-r<round>.txt (`name value unit`:
# _requests _rps _MBps _p50 _p90 _p99 _max _errors). The requests carry the
# token-auth header and the Accept header exactly as the bed's bench.sh builds
# them (nginx passes the client's Authorization through to the hub).
#
# Environment: RATE_ROUNDS (6), RATE_SECONDS (5), RATE_TARGETS ("hubcache
# nginx"), RATE_CONNECTIONS (32), TESTBED_DIR (/tmp/bench-testbed; seed.json
# gives the digests unless MANIFEST and BLOB20 are set), HUBCACHE_URL
# (http://127.0.0.1:$HUBCACHE_PORT, port 15130), NGINX_URL
# (http://127.0.0.1:$NGINX_PORT, port 15120), HUBCACHE_LOAD (else built in
# build-bench/).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TESTBED_DIR=${TESTBED_DIR:-/tmp/bench-testbed}
ROUNDS=${RATE_ROUNDS:-6}
SECONDS_EACH=${RATE_SECONDS:-5}
TARGETS=${RATE_TARGETS:-hubcache nginx}
CONNECTIONS=${RATE_CONNECTIONS:-32}
HUBCACHE_URL=${HUBCACHE_URL:-http://127.0.0.1:${HUBCACHE_PORT:-15130}}
NGINX_URL=${NGINX_URL:-http://127.0.0.1:${NGINX_PORT:-15120}}
PY=/usr/bin/python3

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
log() { bench_log "$@"; }
die() { echo "bench/rates.sh: $*" >&2; exit 1; }

bench_load_binary

SEED=$TESTBED_DIR/seed.json
if [ -z "${MANIFEST:-}" ] || [ -z "${BLOB20:-}" ]; then
  [ -s "$SEED" ] || die "$SEED missing: seed the bed (seed.py) or set MANIFEST and BLOB20"
  MANIFEST=${MANIFEST:-$(jq -r '.medium.digest' "$SEED")}
  BLOB20=${BLOB20:-$(jq -r '.medium.layers[0].digest' "$SEED")}
fi
standalone=0
if [ $# -ge 1 ]; then
  RUN=$1
else
  RUN=$TESTBED_DIR/results/hubcache-rates-$(date +%Y%m%d-%H%M%S)
  standalone=1
fi
mkdir -p "$RUN"

url_of() {
  case "$1" in
    hubcache) echo "$HUBCACHE_URL" ;;
    nginx) echo "$NGINX_URL" ;;
    *) die "unknown target $1 (hubcache or nginx)" ;;
  esac
}
for t in $TARGETS; do
  case "$(url_of "$t")" in
    http://127.0.0.1:*) ;;
    *) die "$t: $(url_of "$t") is not on 127.0.0.1" ;;
  esac
done

# As bench.sh (section 4): if the endpoint answers 401 Bearer, a pull token from its
# realm (loopback only).
auth_hdr() { # auth_hdr BASE REPO -> "Authorization: Bearer ..." or empty
  local base=$1 repo=$2 ch realm service tok rhost
  ch=$(curl -s -o /dev/null -D - --max-time 10 "$base/v2/" | tr -d '\r' | grep -i '^www-authenticate: *bearer' | head -1) || true
  [ -n "$ch" ] || return 0
  realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$ch")
  service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$ch")
  rhost=${realm#http://}
  rhost=${rhost%%/*}
  case "$rhost" in 127.*) ;; *) log "realm $realm is not loopback; not fetching a token"; return 0 ;; esac
  tok=$(curl -sf --max-time 10 "$realm?service=$service&scope=repository:$repo:pull" | jq -r '.token // .access_token') || true
  if [ -n "$tok" ] && [ "$tok" != null ]; then echo "Authorization: Bearer $tok"; fi
}

# load OUT PREFIX CONNECTIONS THREADS METHOD URL HEADER...: one hubcache-load run,
# its figures appended to OUT (its # lines too: the settings and the errors by kind).
load() {
  local out=$1 prefix=$2 conns=$3 threads=$4 method=$5 url=$6 h args=()
  shift 6
  for h in "$@"; do [ -n "$h" ] && args+=(-H "$h"); done
  timeout $((SECONDS_EACH + 30)) "$HUBCACHE_LOAD" -c "$conns" -t "$threads" -d "$SECONDS_EACH" \
    -m "$method" -p "$prefix" "${args[@]}" "$url" >>"$out" 2>>"$RUN/rates.log" ||
    log "$prefix: hubcache-load exited $? (see $out)"
}

log "rates: $ROUNDS round(s) of ${SECONDS_EACH}s per phase, targets $TARGETS, results in $RUN"
for r in $(seq 1 "$ROUNDS"); do
  order=$TARGETS
  # Every other round runs the targets in reverse, so no target always goes first.
  [ $((r % 2)) -eq 0 ] && order=$(echo "$TARGETS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for t in $order; do
    base=$(url_of "$t")
    out=$RUN/rates-$t-r$r.txt
    manifest_url="$base/v2/library/medium/manifests/$MANIFEST"
    blob_url="$base/v2/library/medium/blobs/$BLOB20"
    # A token per target and round: the bed's tokens live 300 s.
    H=$(auth_hdr "$base" library/medium)
    echo "# rates label=$t round=$r url=$base date=$(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(nproc)cpu" >"$out"
    for u in "$manifest_url" "$blob_url"; do
      code=$(curl -s -o /dev/null --max-time 60 -w '%{http_code}' -H "$BENCH_ACCEPT" ${H:+-H "$H"} "$u") || true
      [ "$code" = 200 ] || log "round $r $t: warm GET $u answered $code"
    done
    log "round $r: $t"
    load "$out" rate_manifest_head "$CONNECTIONS" 2 HEAD "$manifest_url" "$BENCH_ACCEPT" "$H"
    load "$out" rate_manifest_get "$CONNECTIONS" 2 GET "$manifest_url" "$BENCH_ACCEPT" "$H"
    load "$out" rate_hit_1client 1 1 GET "$blob_url" "$H"
  done
done

if [ $standalone = 1 ]; then
  "$PY" "$HERE/report.py" "$RUN" | tee "$RUN/report.md"
  log "report: $RUN/report.md"
fi
