#!/bin/sh
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer: g++ with
# -Db_sanitize=address,undefined in build-asan/, then the unit tests and the
# integration tests (which start the sanitized hubcache) with
#   ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
#   UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
# so every finding, leaks at exit included, aborts the process. A report in a
# test binary fails its test. A server started by Mirror (tests/integration/
# mirror.py) reports into its log, and Mirror.stop() raises when the log holds
# one or the process died of SIGABRT. Every other hubcache process a test starts
# (one-shot CLI runs) writes its ASan reports into build-asan/sanitizer-reports/,
# and any file there fails this script too. (g++'s UBSan runtime ignores
# log_path next to ASan: its reports go to stderr, and the abort fails the test.)
#
# Not run sanitized (SANITIZE_SKIP):
#   format            lint, nothing to sanitize
#   test_memory       asserts the server's peak RSS < 64 MiB; ASan's shadow memory
#                     and quarantine alone exceed that
#   browser_dashboard the page's JavaScript in chromium; its server paths (/,
#                     /stats) are covered sanitized by test_stats
#
# Writes build-asan/results.txt, one "<test> OK|SKIP|FAIL" line per test (read by
# scripts/test.sh), and exits 1 on any failure. Arguments go to `meson test`.
set -eu
cd "$(dirname "$0")/.."
skip=${SANITIZE_SKIP:-format test_memory browser_dashboard}
results=build-asan/results.txt
reports=$PWD/build-asan/sanitizer-reports
mkdir -p build-asan
rm -f "$results"

if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true \
    >build-asan/setup.log 2>&1 || { cat build-asan/setup.log; echo "asan_build FAIL" >"$results"; exit 1; }
fi
if ! meson compile -C build-asan; then
  echo "asan_build FAIL" >"$results"
  echo "sanitize: the build failed"
  exit 1
fi

tests=$(meson test -C build-asan --list 2>/dev/null | sed -n 's/^hubcache:[^/]*\/ *//p' |
  grep -vxF "$(printf '%s\n' $skip)" || true)

rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
status=0
# Slower under the sanitizers (about 2x): give each test three times its timeout.
# shellcheck disable=SC2086
meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3 \
  "$@" $tests || status=$?

/usr/bin/python3 - build-asan/meson-logs/testlog.json "$results" <<'PY'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for line in f:
        t = json.loads(line)
        result = t.get("result")
        word = {"OK": "OK", "EXPECTEDFAIL": "OK", "SKIP": "SKIP"}.get(result, "FAIL")
        out.write(f"asan:{t['name']} {word}\n")
PY
if [ -n "$(ls -A "$reports")" ]; then
  status=1
  echo "asan:sanitizer_reports FAIL" >>"$results"
  for r in "$reports"/*; do
    echo "sanitize: report $r:"
    sed 's/^/  | /' "$r"
  done
fi
failed=$(grep -c ' FAIL$' "$results" || true)
echo "sanitize: $(wc -l <"$results") tests run sanitized, $failed failing"
exit $status
