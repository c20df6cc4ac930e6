#!/bin/sh
# Installs what hubcache needs, builds it, and starts the mirror with its
# embedded defaults: listening on :5000, cache under ./data, Docker Hub upstream.
# Extra arguments go to `hubcache serve` (see ./build/hubcache --help).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh build
[ -f build/build.ninja ] || meson setup build --buildtype=release
meson compile -C build
exec ./build/hubcache serve "$@"
