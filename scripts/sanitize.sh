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
#   test_deploy       checks that the shipped Dockerfile's packages provide every
#                     library the binary links; a sanitized one links libasan
#   browser_dashboard the page's JavaScript in chromium; its server paths (/,
#                     /stats) are covered sanitized by test_stats
#   test_s3           a Ceph cluster and its S3 gateway (~20 s to start) around
#                     s3_client_itest, whose 256 MiB transfers are slow at -O0 under
#                     ASan: the run would add a minute or more to a CI budget that has
#                     none; the S3 signing and XML code is covered sanitized by the unit
#                     tests, and s3_client_itest was run under ASan by hand (build-asan/
#                     tests/s3_client_itest with the S3_* of a CephRgw)
#   test_gc_ls_rm     54 s sanitized (the longest but one) for the CLI's gc, ls and rm
#                     beside a running server: the CI budget (25 minutes on 2 cores, with
#                     three builds) has no room for it; the index, reconcile and removal
#                     code it drives is run sanitized by the unit tests (index_db_test,
#                     reconcile_test) and by test_hosted (hubcache gc of hosted content)
#   test_cors         the CORS headers' paths run sanitized in browser_cors (the same
#                     requests from a real browser) and the unit tests (http_headers_test)
#
# Only the binaries these tests run are built here (hubcache, unit_tests, and
# hubcache-load, the bench client test_api_behaviour runs): the S3 client's
# end-to-end test binary belongs to test_s3.
#
# Writes build-asan/results.txt, one "<test> OK|FAIL|SKIP|SKIP-ALLOWED" line per test
# (scripts/tally.py; read by scripts/test.sh), and exits 1 on any failure or skip.
#
#   scripts/sanitize.sh [test...]    meson test names; default: all but the skipped
set -eu
cd "$(dirname "$0")/.."
skip=${SANITIZE_SKIP:-format test_memory test_deploy browser_dashboard test_s3 test_gc_ls_rm test_cors}
results=build-asan/results.txt
reports=$PWD/build-asan/sanitizer-reports
mkdir -p build-asan
rm -f "$results"

# -O0 (buildtype debug): a third of -O2's compile time, which dominates here, and
# exact stack traces; the tests wait on sockets and disks more than on code.
# b_asneeded=false: libasan exports its own crypt_r (an interceptor), so with
# --as-needed the linker drops libcrypt, and the interceptor's real crypt_r is
# then null: every htpasswd check would crash the sanitized server.
options="-Db_sanitize=address,undefined -Db_lundef=false -Db_asneeded=false -Dbuildtype=debug"
options="$options -Dwerror=true"
# shellcheck disable=SC2086
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan $options >build-asan/setup.log 2>&1 ||
    { cat build-asan/setup.log; echo "asan_build FAIL" >"$results"; exit 1; }
fi
# shellcheck disable=SC2086
meson configure build-asan $options
if ! ninja -C build-asan hubcache tests/unit_tests hubcache-load; then
  echo "asan_build FAIL" >"$results"
  echo "sanitize: the build failed"
  exit 1
fi

# shellcheck disable=SC2086
tests=${*:-$(meson test -C build-asan --list 2>/dev/null | sed -n 's/^hubcache:[^/]*\/ *//p' |
  grep -vxF "$(printf '%s\n' $skip)" || true)}

rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
status=0
# Slower under the sanitizers (about 2x): give each test three times its timeout.
# shellcheck disable=SC2086
meson test -C build-asan --no-rebuild --print-errorlogs --num-processes 2 \
  --timeout-multiplier 3 $tests || status=$?

/usr/bin/python3 scripts/tally.py meson build-asan/meson-logs/testlog.json asan: >"$results"
# A test that skipped could not run here: a failure (scripts/tally.py has the one exception).
grep -q ' SKIP$' "$results" && status=1
if [ -n "$(ls -A "$reports")" ]; then
  status=1
  echo "asan:sanitizer_reports FAIL" >>"$results"
  for r in "$reports"/*; do
    echo "sanitize: report $r:"
    sed 's/^/  | /' "$r"
  done
fi
failed=$(grep -c ' FAIL$\| SKIP$' "$results" || true)
echo "sanitize: $(wc -l <"$results") tests run sanitized, $failed failing"
exit $status
