# shellcheck shell=bash
# Shared setup of the bench/ entry points (sourced, not run): the one place that
# says where the release hubcache they measure comes from.
#
#   bench_log MESSAGE...      a timestamped line on stderr
#   bench_release_binary      sets HUBCACHE_BIN: as given, else a release build of
#                             this checkout in build-bench/ (configured once, then
#                             rebuilt incrementally; BUILD_JOBS for ninja -j)

bench_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

bench_release_binary() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [ -z "${HUBCACHE_BIN:-}" ]; then
    bench_log "building a release hubcache in build-bench/"
    [ -f "$root/build-bench/build.ninja" ] ||
      meson setup "$root/build-bench" "$root" --buildtype=release -Dwerror=true >/dev/null
    ninja -C "$root/build-bench" ${BUILD_JOBS:+-j "$BUILD_JOBS"} hubcache >/dev/null
    HUBCACHE_BIN=$root/build-bench/hubcache
  fi
  [ -x "$HUBCACHE_BIN" ] || { echo "bench: no hubcache at $HUBCACHE_BIN" >&2; exit 1; }
  export HUBCACHE_BIN
}
