#!/bin/sh
# Installs every package the build and the tests need, builds with warnings as
# errors, runs the unit and integration tests (they start their own upstream
# registry, token server and mirrors on loopback), then the same tests under
# ASan + UBSan (scripts/sanitize.sh) and every fuzz target for a bounded time
# (scripts/fuzz.sh), and ends with a line "N passed, N failed" counting all three
# (each sanitized test and each fuzz target is one test; a skipped test counts as
# failed, see scripts/tally.py). RUN_SANITIZE=0 or
# RUN_FUZZ=0 skips a step for a quick local run; CI runs both. The whole run,
# builds included (unity builds, see meson.build), took 16 minutes in a clean
# clone on the shared 2-core machine (docs/benchmarks.md, "Build time").
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh all
# The browser test's playwright-core, from npm (it drives Debian's chromium; no browser download).
[ -d tests/browser/node_modules/playwright-core ] ||
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
[ -f build/build.ninja ] || meson setup build -Dwerror=true
meson configure build -Dwerror=true
meson compile -C build
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
# Runs scripts/$1.sh, which writes $2/results.txt ("<test> OK|FAIL|SKIP|SKIP-ALLOWED" lines);
# a failure it could not write down (it stopped early) is added as one.
extra_step() {
  rc=0
  "./scripts/$1.sh" || rc=$?
  [ "$rc" = 0 ] && return 0
  status=$rc
  mkdir -p "$2"
  grep -qs ' FAIL$\| SKIP$' "$2/results.txt" || echo "$1.sh FAIL" >>"$2/results.txt"
}
rm -f build-asan/results.txt build-fuzz/results.txt
[ "${RUN_SANITIZE:-1}" = 1 ] && extra_step sanitize build-asan
[ "${RUN_FUZZ:-1}" = 1 ] && extra_step fuzz build-fuzz
# A skip (exit 77) counts as a failure; only the OCI conformance suite may skip, when
# ../shared/tools/oci-conformance/ is absent (scripts/tally.py says so plainly).
/usr/bin/python3 scripts/tally.py meson build/meson-logs/testlog.json >build/results.txt
/usr/bin/python3 scripts/tally.py summary build/results.txt build-asan/results.txt \
  build-fuzz/results.txt || status=1
exit $status
