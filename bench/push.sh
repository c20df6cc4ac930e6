#!/usr/bin/env bash
# Push and hosted-pull benchmark: hubcache (--hosted 'bench/*') beside Debian's
# docker-registry (distribution 2.8), side by side, rounds alternated:
#
#   bench/push.sh                       # ROUNDS=3, ~1.5 min a round here
#   ROUNDS=1 bench/push.sh
#   DRY_RUN=1 bench/push.sh             # hubcache's hosted role played by a 2nd docker-registry
#
# Builds a release hubcache in build-bench/ unless HUBCACHE_BIN is given, then
# runs bench/push.py (its docstring has every phase and figure): both servers
# on free loopback ports, each in a fresh root under $STATE, started and
# stopped by pid for every round. Results: $STATE/results/push-<time>/
# (push-<target>-r<N>.txt, push-report.md).
#
# Environment: ROUNDS (3), PULL_REPEAT (5), PULL_1G_REPEAT (3), STATE
# (/tmp/bench-push; about 5 GiB free needed), HUBCACHE_BIN, HUBCACHE_BENCH_ARGS
# (extra `hubcache serve` flags), DIST_BIN (/usr/bin/docker-registry),
# CHUNKED=1 (PATCH bodies in Transfer-Encoding: chunked), NO_MIRROR_BIG=1 (skip
# the 1 GiB mirror hit), PERF_PHASES (e.g. push_1g,push_many: `perf record -a -g`
# of those phases in round 1, summarized by bench/perf_summary.py), BUILD_JOBS (ninja -j; default: ninja's). Not part of
# the test command (meson test / scripts/test.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
DIST_BIN=${DIST_BIN:-/usr/bin/docker-registry}
STATE=${STATE:-/tmp/bench-push}

die() { echo "bench/push.sh: $*" >&2; exit 1; }
[ -x "$DIST_BIN" ] || die "no docker-registry at $DIST_BIN (apt-get install docker-registry, or set DIST_BIN)"

args=(--rounds "${ROUNDS:-3}" --pull-repeat "${PULL_REPEAT:-5}" --pull-1g-repeat "${PULL_1G_REPEAT:-3}"
  --state "$STATE" --dist-bin "$DIST_BIN" --hubcache-args "${HUBCACHE_BENCH_ARGS:-}")
[ "${CHUNKED:-0}" = 1 ] && args+=(--chunked)
[ "${NO_MIRROR_BIG:-0}" = 1 ] && args+=(--no-mirror-big)
[ "${DRY_RUN:-0}" = 1 ] && args+=(--dry-run)
[ -n "${PERF_PHASES:-}" ] && args+=(--perf "$PERF_PHASES")

bench_release_binary
exec /usr/bin/python3 "$HERE/push.py" --bin "$HUBCACHE_BIN" "${args[@]}"
