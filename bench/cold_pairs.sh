#!/usr/bin/env bash
# Cold pull through a mirror against the same pull straight from the hub, in
# adjacent pairs, for the ratio_cold_* goal on a noisy machine:
#
#   bench/cold_pairs.sh TARGET [IMAGE] [PAIRS]     TARGET: hubcache | nginx
#
# bench.sh times 3 direct pulls, then 3 cold pulls, and divides the medians; on
# the shared 2-core machine the direct pulls alone varied 2x between batches a
# minute apart (0.52-1.38 s for library/many:1), so that ratio swings by as
# much. Here each pair is a direct pull, a reset of the mirror (not timed), then
# the cold pull, seconds apart; it prints each pair's ratio and the median:
#   cold_pairs_<image>_ratio_median  cold_pairs_<image>_ratio_min/_max  (x)
# Expects the bed and the mirror running on bench/run.sh's ports (BENCH_PORT_BASE,
# TESTBED_DIR), e.g. started by bench/profile.sh or by hand:
#   TESTBED_DIR=... HUB_PORT=... bench/hubcache.sh reset
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TESTBED=${TESTBED:-$ROOT/../shared/testbed}
TARGET=${1:?usage: cold_pairs.sh hubcache|nginx [IMAGE] [PAIRS]}
IMAGE=${2:-many}
PAIRS=${3:-7}
export TESTBED_DIR=${TESTBED_DIR:-/tmp/bench-testbed}
BASE=${BENCH_PORT_BASE:-15100}
export HUB_PORT=$BASE TOKEN_PORT=$((BASE + 1)) CDN_PORT=$((BASE + 3)) DIST_PORT=$((BASE + 10))
export NGINX_PORT=$((BASE + 20)) HUBCACHE_PORT=$((BASE + 30))
case "$TARGET" in
  hubcache) MPORT=$HUBCACHE_PORT; RESET="$HERE/hubcache.sh reset" ;;
  nginx) MPORT=$NGINX_PORT; RESET="$TESTBED/anchors.sh reset nginx" ;;
  *) echo "cold_pairs.sh: unknown target $TARGET" >&2; exit 2 ;;
esac
D=$(mktemp -d /dev/shm/cold-pairs.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$D"' EXIT
pull() {  # pull HOSTPORT -> seconds
  rm -rf "$D/x"
  local t0 t1
  t0=$(date +%s.%N)
  skopeo copy -q --retry-times 0 --src-tls-verify=false "docker://$1/library/$IMAGE:1" "dir:$D/x" >/dev/null
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}'
}
ratios=()
for i in $(seq 1 "$PAIRS"); do
  direct=$(pull "127.0.0.1:$HUB_PORT")
  bash -c "$RESET" >/dev/null 2>&1
  for _ in $(seq 1 100); do  # until it answers at all (401 from nginx is an answer)
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$MPORT/v2/" && break
    sleep 0.1
  done
  cold=$(pull "127.0.0.1:$MPORT")
  r=$(awk -v c="$cold" -v d="$direct" 'BEGIN{printf "%.3f", c/d}')
  ratios+=("$r")
  echo "# pair $i: direct $direct s, cold $cold s, ratio $r" >&2
done
printf '%s\n' "${ratios[@]}" | sort -g | awk -v img="$IMAGE" '
  {a[NR]=$1} END{
    m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
    printf "cold_pairs_%s_ratio_median %.3f x\ncold_pairs_%s_ratio_min %.3f x\ncold_pairs_%s_ratio_max %.3f x\n", img, m, img, a[1], img, a[NR]}'
