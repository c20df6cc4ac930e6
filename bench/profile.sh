#!/usr/bin/env bash
# Profiles hubcache during single benchmark figures, for docs/benchmarks.md:
#
#   bench/profile.sh                        # every section below
#   PROFILES="miss hit1" bench/profile.sh   # some of them
#
# Starts the test bed's hub (token auth, seeding it if needed) and a hubcache
# (bench/hubcache.sh), on the ports of bench/run.sh (BENCH_PORT_BASE, default
# 15100), then for each section runs the figure's work as bench.sh does while
# `perf record` samples the whole machine (-a -g, 999 Hz), and writes
#   <section>.perf.txt   bench/perf_summary.py: CPU share by process, then
#                        hubcache's objects, top symbols, kernel time by caller
#   <section>.perf.data  the recording (perf report -i ... to dig further)
# into $TESTBED_DIR/results/hubcache-profile-<time>/. The section `keepalive`
# also writes keepalive.mem.txt: hubcache's threads and where its resident
# memory is (thread stacks, heap arenas, the rest) before, with the idle
# connections open, and during the transfers. Everything it started is stopped
# on exit. Sections:
#   miss      first GET of the cold 1 GiB blob (big_first_fetch_MBps)
#   coldmany  a cold skopeo pull of library/many:1, 50 layers (ratio_cold_many)
#   hit1      3 GETs of the warm 1 GiB blob, one client (hit_1client_MBps)
#   many      wrk, 16 connections x 10 s on the warm 20 MB blob (hit_many_MBps)
#   get       wrk, 32 connections x 8 s, manifest GET by digest (manifest_get_rps)
#   head      ab, 32 connections x 8 s, manifest HEAD by digest (manifest_head_rps)
#   keepalive bench/keepalive.py (ka_* figures)
# Environment: as bench/run.sh (TESTBED, TESTBED_DIR, BENCH_PORT_BASE,
# HUBCACHE_BIN, HUBCACHE_BENCH_ARGS), PROFILES, PERF_FREQ (999).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TESTBED=${TESTBED:-$ROOT/../shared/testbed}
PROFILES=${PROFILES:-miss coldmany hit1 many get head keepalive}
FREQ=${PERF_FREQ:-999}
export TESTBED_DIR=${TESTBED_DIR:-/tmp/bench-testbed}
BASE=${BENCH_PORT_BASE:-15100}
export HUB_PORT=$BASE TOKEN_PORT=$((BASE + 1)) CDN_PORT=$((BASE + 3)) DIST_PORT=$((BASE + 10))
export NGINX_PORT=$((BASE + 20)) HUBCACHE_PORT=$((BASE + 30))
export HUBCACHE_BIN=${HUBCACHE_BIN:-$ROOT/build-bench/hubcache}
PY=/usr/bin/python3
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
MIRROR=http://127.0.0.1:$HUBCACHE_PORT

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "bench/profile.sh: $*" >&2; exit 1; }

[ -x "$TESTBED/bench.sh" ] || die "the test bed is not at $TESTBED (set TESTBED=...)"
[ -x "$HUBCACHE_BIN" ] || die "no hubcache at $HUBCACHE_BIN (run bench/run.sh once, or set HUBCACHE_BIN)"
command -v perf >/dev/null || die "perf is not installed"
for p in $HUB_PORT $TOKEN_PORT $HUBCACHE_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p is in use; choose another BENCH_PORT_BASE"; fi
done

PERF_PID=
cleanup() {
  [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null || true
  "$HERE/hubcache.sh" stop || true
  "$TESTBED/hub.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

unset HUB_REDIRECT
"$TESTBED/hub.sh" start >/dev/null
eval "$("$TESTBED/hub.sh" env)"
"$PY" "$TESTBED/seed.py" >/dev/null
SEED=$TESTBED_DIR/seed.json
BIG=$(jq -r '.big.layers[0].digest' "$SEED")
BLOB20=$(jq -r '.medium.layers[0].digest' "$SEED")
MANIFEST=$(jq -r '.medium.digest' "$SEED")
OUT=$TESTBED_DIR/results/hubcache-profile-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
log "results in $OUT"

pid() { "$HERE/hubcache.sh" pids; }
perf_start() {  # perf_start NAME: sample the whole machine until perf_stop
  perf record -q -a -g -F "$FREQ" -o "$OUT/$1.perf.data" >/dev/null 2>&1 &
  PERF_PID=$!
  sleep 1
}
perf_stop() {  # perf_stop NAME: stop sampling, write NAME.perf.txt
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=
  "$PY" "$HERE/perf_summary.py" "$OUT/$1.perf.data" hubcache "$(pid)" >"$OUT/$1.perf.txt" 2>/dev/null || true
  log "$1: $(awk '/^ +[0-9.]+%/{print $1, $2; n++} n==3{exit}' "$OUT/$1.perf.txt" | paste -sd' ') (CPU share)"
}
get_blob() { curl -s -o /dev/null --max-time 300 -w '%{http_code} %{size_download} %{speed_download}\n' "$1"; }
mem_snapshot() {  # mem_snapshot LABEL: threads and resident memory of hubcache by kind
  local p; p=$(pid)
  {
    echo "## $1"
    grep -E '^(Threads|VmRSS|VmHWM):' "/proc/$p/status"
    # thread stacks: the 8 MiB anonymous mappings (each with a 4 KiB guard);
    # other anonymous: malloc's arenas, transfer buffers, ...; [heap]; files.
    awk '
      /^[0-9a-f]+-[0-9a-f]+ / { name = $6; kind = ""; next }
      /^Size:/ { size = $2;
        if (name == "[heap]") kind = "heap";
        else if (name == "" && (size == 8192 || size == 8196)) kind = "thread stacks";
        else if (name == "") kind = "other anonymous";
        else kind = "files and libraries" }
      /^Rss:/ { rss[kind] += $2; n[kind]++ }
      END { for (k in rss) printf "  %-20s %8.1f MiB in %d mappings\n", k, rss[k] / 1024, n[k] }' "/proc/$p/smaps"
  } >>"$OUT/keepalive.mem.txt"
}

"$HERE/hubcache.sh" reset
for s in $PROFILES; do
  case "$s" in
    miss)
      "$HERE/hubcache.sh" reset
      perf_start miss
      log "miss: $(get_blob "$MIRROR/v2/library/big/blobs/$BIG")"
      perf_stop miss ;;
    coldmany)
      "$HERE/hubcache.sh" reset
      rm -rf "$OUT/pull"
      perf_start coldmany
      t0=$(date +%s.%N)
      skopeo copy -q --retry-times 0 --src-tls-verify=false "docker://127.0.0.1:$HUBCACHE_PORT/library/many:1" "dir:$OUT/pull"
      log "coldmany: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f s", b-a}')"
      perf_stop coldmany
      rm -rf "$OUT/pull" ;;
    hit1)
      get_blob "$MIRROR/v2/library/big/blobs/$BIG" >/dev/null
      perf_start hit1
      for i in 1 2 3; do log "hit1 $i: $(get_blob "$MIRROR/v2/library/big/blobs/$BIG")"; done
      perf_stop hit1 ;;
    many)
      get_blob "$MIRROR/v2/library/medium/blobs/$BLOB20" >/dev/null
      perf_start many
      wrk -t 2 -c 16 -d 10s --timeout 30s "$MIRROR/v2/library/medium/blobs/$BLOB20" | grep -E 'Requests/sec|Transfer/sec' >&2
      perf_stop many ;;
    get)
      curl -s -o /dev/null -H "$BENCH_ACCEPT" "$MIRROR/v2/library/medium/manifests/$MANIFEST"
      perf_start get
      wrk -t 2 -c 32 -d 8s --timeout 10s --latency -H "$BENCH_ACCEPT" "$MIRROR/v2/library/medium/manifests/$MANIFEST" |
        grep -E 'Requests/sec| 99%' >&2
      perf_stop get ;;
    head)
      curl -s -o /dev/null -H "$BENCH_ACCEPT" "$MIRROR/v2/library/medium/manifests/$MANIFEST"
      perf_start head
      ab -k -i -q -c 32 -t 8 -n 100000000 -s 10 -H "$BENCH_ACCEPT" "$MIRROR/v2/library/medium/manifests/$MANIFEST" 2>&1 |
        grep -E '^Requests per second|^ +99%' >&2
      perf_stop head ;;
    keepalive)
      "$HERE/hubcache.sh" reset
      : >"$OUT/keepalive.mem.txt"
      get_blob "$MIRROR/v2/library/medium/blobs/$BLOB20" >/dev/null
      sleep 1
      mem_snapshot "base (one 20 MB blob fetched)"
      perf_start keepalive
      timeout 180 "$PY" "$HERE/keepalive.py" --url "$MIRROR" --pids-cmd "$HERE/hubcache.sh pids" \
        --blob "$BLOB20" --manifest "$MANIFEST" --seconds 15 --out "$OUT/keepalive.txt" >/dev/null &
      ka=$!
      sleep 6; mem_snapshot "500 idle connections open"
      sleep 6; mem_snapshot "idle connections + 16 transfers"
      wait "$ka" || log "keepalive.py failed"
      perf_stop keepalive
      mem_snapshot "after keepalive.py closed its connections"
      cat "$OUT/keepalive.txt" >&2 ;;
    *) die "unknown section $s" ;;
  esac
done
log "profiles in $OUT"
