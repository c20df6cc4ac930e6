#!/usr/bin/env bash
# hubcache's benchmark, side by side with the reference mirrors, in one command:
#
#   bench/run.sh                      # ROUNDS=2, every target, report at the end
#   ROUNDS=1 TARGETS="hubcache nginx" bench/run.sh
#
# It builds a release hubcache in build-bench/ (unless HUBCACHE_BIN is given),
# starts the test bed's fake Docker Hub (token auth), seeds it, starts the two
# reference mirrors (distribution's proxy, nginx proxy_cache) and hubcache, all on
# loopback, then for each round and target runs:
#   bench.sh      the test bed's figures (pulls, 1 GiB miss/hit, 16-client hits,
#                 manifest rate, thundering herd, peak RSS)   -> bench-T-rN.txt
#   keepalive.py  500 idle keep-alive connections + 16 transfers -> keepalive-T-rN.txt
#   hits_sqlite.py (hubcache only) hit latency with and without SQLite write
#                 contention                                   -> hits-hubcache-rN.txt
# then, when TARGETS has both hubcache and nginx, rates.sh: manifest HEAD and GET
# rates and one-client hits of the 20 MB blob, measured by hubcache-load
# (bench/load.cpp), RATE_ROUNDS rounds alternating hubcache and nginx
#                                                              -> rates-T-rN.txt
# and finally report.py: the goals of issues 8 and 17 a row each (medians of the
# rounds, ratio, per-round range, met or not), then every figure
# (RESULTS/report.md), also written into docs/benchmarks.md between its
# "bench/run.sh report" markers, so the table there is always the latest run's
# (BENCH_UPDATE_DOCS=0: not). Everything it started is stopped on exit.
# It is never part of the test command (meson test / scripts/test.sh).
#
# Environment:
#   ROUNDS (2), TARGETS ("hubcache nginx dist hub"; hub = the upstream itself,
#   the baseline of the miss figures), TESTBED (../shared/testbed beside this
#   checkout), TESTBED_DIR (/tmp/bench-testbed), BENCH_PORT_BASE (15100: hub,
#   +1 token server, +10 dist, +20 nginx, +30 hubcache, +31 the hits benchmark),
#   HUBCACHE_BIN (skip the build, bench this binary), HUBCACHE_BENCH_ARGS (extra
#   serve flags), BENCH_REPEAT / BENCH_SKIP / ... (passed to bench.sh),
#   KEEPALIVE_IDLE (500), KEEPALIVE_SECONDS (15), HITS_SECONDS (8), RATE_ROUNDS (6),
#   RATE_SECONDS (5; rates.sh: ~3.5 min with the defaults), HUBCACHE_LOAD (skip
#   building the load generator), BENCH_UPDATE_DOCS (1).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TESTBED=${TESTBED:-$ROOT/../shared/testbed}
ROUNDS=${ROUNDS:-2}
TARGETS=${TARGETS:-hubcache nginx dist hub}
export TESTBED_DIR=${TESTBED_DIR:-/tmp/bench-testbed}
BASE=${BENCH_PORT_BASE:-15100}
export HUB_PORT=$BASE TOKEN_PORT=$((BASE + 1)) CDN_PORT=$((BASE + 3)) DIST_PORT=$((BASE + 10))
export NGINX_PORT=$((BASE + 20)) HUBCACHE_PORT=$((BASE + 30))
HITS_PORT=$((BASE + 31))
PY=/usr/bin/python3

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
log() { bench_log "$@"; }
die() { echo "bench/run.sh: $*" >&2; exit 1; }

[ -x "$TESTBED/bench.sh" ] || die "the test bed is not at $TESTBED (set TESTBED=...): it provides the upstream, the seed images and the reference mirrors"
for p in $HUB_PORT $TOKEN_PORT $DIST_PORT $NGINX_PORT $HUBCACHE_PORT $HITS_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    die "port $p is in use (another test bed?); choose another BENCH_PORT_BASE"
  fi
done

bench_release_binary

cleanup() {
  "$HERE/hubcache.sh" stop || true
  "$TESTBED/anchors.sh" stop all >/dev/null 2>&1 || true
  "$TESTBED/hub.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$TESTBED/install.sh" >/dev/null
unset HUB_REDIRECT
"$TESTBED/hub.sh" start >/dev/null
eval "$("$TESTBED/hub.sh" env)"
[ "$HUB_AUTH" = token ] || { "$TESTBED/hub.sh" restart >/dev/null; eval "$("$TESTBED/hub.sh" env)"; }
"$PY" "$TESTBED/seed.py" >/dev/null
"$TESTBED/anchors.sh" reset all >/dev/null
eval "$("$TESTBED/anchors.sh" env)"
"$HERE/hubcache.sh" reset

SEED=$TESTBED_DIR/seed.json
BLOB20=$(jq -r '.medium.layers[0].digest' "$SEED")
MANIFEST=$(jq -r '.medium.digest' "$SEED")
RUN=$TESTBED_DIR/results/hubcache-bench-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
log "results in $RUN"

url_of() {
  case "$1" in
    hubcache) echo "http://127.0.0.1:$HUBCACHE_PORT" ;;
    nginx) echo "$NGINX_URL" ;;
    dist) echo "$DIST_URL" ;;
    hub) echo "$HUB_URL" ;;
  esac
}
pids_of() {
  case "$1" in
    hubcache) echo "$HERE/hubcache.sh pids" ;;
    nginx | dist) echo "$TESTBED/anchors.sh pids $1" ;;
  esac
}
reset_of() {
  case "$1" in
    hubcache) echo "$HERE/hubcache.sh reset" ;;
    nginx | dist) echo "$TESTBED/anchors.sh reset $1" ;;
  esac
}

for r in $(seq 1 "$ROUNDS"); do
  order=$TARGETS
  # Every other round runs the targets in reverse, so no target always goes first.
  [ $((r % 2)) -eq 0 ] && order=$(echo "$TARGETS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for t in $order; do
    log "round $r: $t"
    out=$RUN/bench-$t-r$r.txt
    if [ "$t" = hub ]; then
      # Only the 1 GiB fetch is needed from the upstream itself (the miss baseline).
      MIRROR_PIDFILE=$HUB_REGISTRY_PIDFILE BENCH_SKIP="pulls many rps herd" BENCH_OUT=$out \
        "$TESTBED/bench.sh" "$HUB_URL" hub >/dev/null || log "bench.sh hub failed"
      continue
    fi
    MIRROR_RESET_CMD=$(reset_of "$t") MIRROR_PIDS_CMD=$(pids_of "$t") BENCH_OUT=$out \
      "$TESTBED/bench.sh" "$(url_of "$t")" "$t" >/dev/null || log "bench.sh $t failed"
    timeout 180 "$PY" "$HERE/keepalive.py" --url "$(url_of "$t")" --pids-cmd "$(pids_of "$t")" \
      --blob "$BLOB20" --manifest "$MANIFEST" --idle "${KEEPALIVE_IDLE:-500}" \
      --seconds "${KEEPALIVE_SECONDS:-15}" --out "$RUN/keepalive-$t-r$r.txt" >/dev/null ||
      log "keepalive.py $t failed"
    if [ "$t" = hubcache ]; then
      rm -rf "$TESTBED_DIR/hubcache-hits"
      timeout 300 "$PY" "$HERE/hits_sqlite.py" --bin "$HUBCACHE_BIN" --upstream "$HUB_URL" \
        --port "$HITS_PORT" --root "$TESTBED_DIR/hubcache-hits" --seed "$SEED" \
        --seconds "${HITS_SECONDS:-8}" --out "$RUN/hits-hubcache-r$r.txt" >/dev/null ||
        log "hits_sqlite.py failed"
    fi
  done
done

if [[ " $TARGETS " == *" hubcache "* && " $TARGETS " == *" nginx "* ]]; then
  log "rates: hubcache and nginx, alternated"
  HUBCACHE_URL=$(url_of hubcache) NGINX_URL=$(url_of nginx) MANIFEST=$MANIFEST BLOB20=$BLOB20 \
    RATE_TARGETS="hubcache nginx" "$HERE/rates.sh" "$RUN" || log "rates.sh failed"
fi

docs=()
[ "${BENCH_UPDATE_DOCS:-1}" = 1 ] && docs=(--docs "$ROOT/docs/benchmarks.md")
"$PY" "$HERE/report.py" "$RUN" "${docs[@]}" | tee "$RUN/report.md"
log "report: $RUN/report.md"
