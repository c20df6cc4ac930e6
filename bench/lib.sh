# shellcheck shell=bash
# Shared setup of the bench/ entry points (sourced, not run): the one place that
# says where the release hubcache they measure comes from.
#
#   BENCH_ACCEPT              the Accept field of a modern client's manifest
#                             requests (bench.sh's, in section 4), for the drivers
#                             that ask for manifests themselves
#   bench_log MESSAGE...      a timestamped line on stderr
#   bench_release_binary      sets HUBCACHE_BIN: as given, else a release build of
#                             this checkout in build-bench/ (configured once, then
#                             rebuilt incrementally; BUILD_JOBS for ninja -j); and
#                             HUBCACHE_LOAD (bench_load_binary)
#   bench_load_binary         sets HUBCACHE_LOAD, the load generator (bench/load.cpp):
#                             as given, else built in build-bench/ the same way

# shellcheck disable=SC2034  # read by the scripts that source this file
BENCH_ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

bench_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# bench_build TARGET: builds TARGET of this checkout in build-bench/, prints its path
# (nothing, and a failed status, when the build fails).
bench_build() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  bench_log "building a release $1 in build-bench/"
  { [ -f "$root/build-bench/build.ninja" ] ||
    meson setup "$root/build-bench" "$root" --buildtype=release -Dwerror=true >/dev/null; } &&
    ninja -C "$root/build-bench" ${BUILD_JOBS:+-j "$BUILD_JOBS"} "$1" >/dev/null &&
    echo "$root/build-bench/$1"
}

bench_release_binary() {
  [ -n "${HUBCACHE_BIN:-}" ] || HUBCACHE_BIN=$(bench_build hubcache)
  [ -x "$HUBCACHE_BIN" ] || { echo "bench: no hubcache at $HUBCACHE_BIN" >&2; exit 1; }
  export HUBCACHE_BIN
  bench_load_binary
}

bench_load_binary() {
  [ -n "${HUBCACHE_LOAD:-}" ] || HUBCACHE_LOAD=$(bench_build hubcache-load)
  [ -x "$HUBCACHE_LOAD" ] || { echo "bench: no hubcache-load at $HUBCACHE_LOAD" >&2; exit 1; }
  export HUBCACHE_LOAD
}
