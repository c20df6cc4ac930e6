#!/usr/bin/env bash
# hubcache on the test bed, for bench.sh's MIRROR_RESET_CMD / MIRROR_PIDS_CMD.
#
#   bench/hubcache.sh start|stop|reset|pids|status
#
# reset = stop, wipe the cache, start, wait until /v2/ answers (a cold cache).
# The server runs detached (own session), its pid in $STATE/hubcache.pid; stop
# ends exactly that pid. Settings (environment):
#   HUBCACHE_BIN        binary (default: build-bench/hubcache of this checkout)
#   HUBCACHE_PORT       listen port on 127.0.0.1 (default 15130)
#   HUB_PORT            the upstream (the test bed's hub) on 127.0.0.1 (default 15000)
#   TESTBED_DIR         state lives in $TESTBED_DIR/hubcache (default /tmp/mirror-testbed)
#   HUBCACHE_BENCH_ARGS extra flags for `hubcache serve` (e.g. "--max-connections 2000")
# The access log is on (to a file), as it is for the reference mirrors.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${HUBCACHE_BIN:-$HERE/../build-bench/hubcache}
PORT=${HUBCACHE_PORT:-15130}
HUB_PORT=${HUB_PORT:-15000}
STATE=${TESTBED_DIR:-/tmp/mirror-testbed}/hubcache
PIDFILE=$STATE/hubcache.pid

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

alive() {
  [ -s "$PIDFILE" ] || return 1
  local p; p=$(cat "$PIDFILE")
  [ -d "/proc/$p" ] && grep -q hubcache "/proc/$p/cmdline" 2>/dev/null &&
    [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]
}

start() {
  if alive; then log "hubcache already running (pid $(cat "$PIDFILE"))"; return 0; fi
  [ -x "$BIN" ] || { log "no binary at $BIN (build it: meson compile -C build-bench)"; exit 1; }
  mkdir -p "$STATE/data"
  # shellcheck disable=SC2086
  setsid "$BIN" serve --addr "127.0.0.1:$PORT" --upstream "http://127.0.0.1:$HUB_PORT" \
    --root "$STATE/data" --access-log "$STATE/access.log" ${HUBCACHE_BENCH_ARGS:-} \
    >>"$STATE/server.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local i
  for i in $(seq 1 100); do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/v2/"; then return 0; fi
    alive || { log "hubcache exited: $(tail -3 "$STATE/server.log")"; exit 1; }
    sleep 0.1
  done
  log "hubcache did not answer on :$PORT within 10 s"; exit 1
}

stop() {
  alive || { rm -f "$PIDFILE"; return 0; }
  local p i; p=$(cat "$PIDFILE")
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 100); do
    [ -d "/proc/$p" ] || break
    [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && break
    sleep 0.1
  done
  # A zombie has exited (its parent, whoever adopted it, has not reaped it yet).
  if [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then
    log "hubcache $p did not stop on TERM within 10 s; KILL"; kill -KILL "$p" 2>/dev/null || true; sleep 0.2
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  reset) stop; rm -rf "$STATE/data"; start ;;
  pids) alive && cat "$PIDFILE" ;;
  status) if alive; then echo "hubcache up: http://127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; else echo "hubcache down"; fi ;;
  *) echo "usage: $0 start|stop|reset|pids|status" >&2; exit 2 ;;
esac
