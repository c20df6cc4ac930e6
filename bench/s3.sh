#!/usr/bin/env bash
# hubcache on S3 beside Debian's docker-registry (distribution 2.8) on the same S3
# gateway (issue 14), rounds alternated:
#
#   bench/s3.sh                         # ROUNDS=3: ~2.6 min here (~35 s a round)
#   ROUNDS=1 bench/s3.sh                # a quick look
#
# Builds a release hubcache in build-bench/ unless HUBCACHE_BIN is given, then runs
# bench/s3.py (its docstring has every phase and figure): one Ceph S3 gateway on
# loopback (tests/integration/ceph_rgw.py) and one upstream docker-registry for the
# run; per round, fresh servers on free loopback ports, each under its own bucket
# prefix, stopped by pid: cold pulls (direct, hubcache, CNCF registry), L2 hits
# beside the CNCF registry's S3 hits, L1 hits, and 16 clients against one node and a
# three-node cluster behind HAProxy. Results: $STATE/results/s3-<time>/ (s3-r<N>.txt,
# s3-report.md).
#
# Environment: ROUNDS (3), CLIENTS (16), LOAD_SECONDS (5), L1_REPEAT (3), STATE
# (/tmp/bench-s3; the gateway keeps the bucket in RAM: memstore, ~0.5 GiB a run), HUBCACHE_BIN,
# DIST_BIN (/usr/bin/docker-registry), NO_VERIFY=1 (skip the untimed pass that checks
# every digest), BUILD_JOBS (ninja -j). Needs radosgw, ceph-mon, ceph-osd,
# ceph-common and haproxy (scripts/install-deps.sh all). Not part of the test command.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
DIST_BIN=${DIST_BIN:-/usr/bin/docker-registry}

die() { echo "bench/s3.sh: $*" >&2; exit 1; }
[ -x "$DIST_BIN" ] || die "no docker-registry at $DIST_BIN (apt-get install docker-registry, or set DIST_BIN)"
for t in radosgw ceph-mon ceph-osd ceph haproxy; do
  command -v "$t" >/dev/null || die "$t is missing (scripts/install-deps.sh all)"
done

args=(--rounds "${ROUNDS:-3}" --clients "${CLIENTS:-16}" --load-seconds "${LOAD_SECONDS:-5}"
  --l1-repeat "${L1_REPEAT:-3}" --state "${STATE:-/tmp/bench-s3}" --dist-bin "$DIST_BIN")
[ "${NO_VERIFY:-0}" = 1 ] && args+=(--no-verify)

bench_release_binary
exec /usr/bin/python3 "$HERE/s3.py" --bin "$HUBCACHE_BIN" "${args[@]}"
