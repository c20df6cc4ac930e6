#!/bin/sh
# Builds the libFuzzer targets (fuzz/*_fuzz.cpp) with clang, ASan and UBSan in
# build-fuzz/ (-Dfuzz=true), then runs each for FUZZ_SECONDS (default 10) over a
# temp copy of its committed seeds, fuzz/corpus/<target>/, so what the fuzzer
# finds never grows the repository. FUZZ_JOBS targets run at once (default: the
# number of CPUs).
#
# Any crash, sanitizer report, broken invariant, leak, slow input (> 10 s) or
# memory blow-up (> 2 GiB) fails. The input is kept to reproduce it:
#   build-fuzz/fuzz/<target>_fuzz build-fuzz/artifacts/<target>-crash-<sha1>
# (a fixed finding belongs in fuzz/seeds.py as a regression seed).
#
# Writes build-fuzz/results.txt, one "<target> OK|FAIL" line per target (read by
# scripts/test.sh), logs to build-fuzz/logs/<target>.log, and exits 1 on any failure.
#
#   scripts/fuzz.sh [target...]      targets without "_fuzz"; default: all
set -eu
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."

# One target, run by the loop below through xargs: "fuzz.sh --run-one <target>".
if [ "${1:-}" = --run-one ]; then
  t=$2
  corpus=$(mktemp -d "${TMPDIR:-/tmp}/hubcache-fuzz-$t.XXXXXX")
  trap 'rm -rf "$corpus"' EXIT
  cp -r "fuzz/corpus/$t/." "$corpus/"
  mkdir -p build-fuzz/artifacts build-fuzz/logs
  log=build-fuzz/logs/$t.log
  start=$(date +%s)
  rc=0
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "build-fuzz/fuzz/${t}_fuzz" -max_total_time="${FUZZ_SECONDS:-10}" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" \
    "$corpus" >"$log" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  if [ "$rc" = 0 ]; then
    echo "$t OK" >"build-fuzz/results.d/$t"
    echo "fuzz $t: ok, ${runs:-?} runs in ${elapsed}s, corpus $(ls "fuzz/corpus/$t" | wc -l) -> $(ls "$corpus" | wc -l) inputs"
  else
    echo "$t FAIL" >"build-fuzz/results.d/$t"
    echo "fuzz $t: FAILED (exit $rc after ${elapsed}s); the end of $log:"
    tail -n 60 "$log" | sed 's/^/  | /'
    ls build-fuzz/artifacts/"$t"-* 2>/dev/null | sed 's/^/  input: /'
  fi
  exit 0
fi

mkdir -p build-fuzz
rm -rf build-fuzz/results.txt build-fuzz/results.d build-fuzz/artifacts
mkdir -p build-fuzz/results.d
# -Dunity=off: the targets take single objects out of the core library
# (fuzz/meson.build), which meson cannot do from a unity build.
if [ ! -f build-fuzz/build.ninja ]; then
  CXX=clang++ meson setup build-fuzz -Dfuzz=true -Dunity=off >build-fuzz/setup.log 2>&1 ||
    { cat build-fuzz/setup.log; echo "fuzz_build FAIL" >build-fuzz/results.txt; exit 1; }
fi
meson configure build-fuzz -Dunity=off
# Default: every target fuzz/meson.build defines.
targets=${*:-$(meson introspect build-fuzz --targets | /usr/bin/python3 -c '
import json, sys
names = (t["name"] for t in json.load(sys.stdin))
print(" ".join(sorted(n[:-len("_fuzz")] for n in names if n.endswith("_fuzz"))))')}
build_targets=""
for t in $targets; do build_targets="$build_targets fuzz/${t}_fuzz"; done
# Only the targets (and the core library they link), not the server and tests.
# shellcheck disable=SC2086
if ! meson compile -C build-fuzz $build_targets; then
  echo "fuzz_build FAIL" >build-fuzz/results.txt
  echo "fuzz: the build failed"
  exit 1
fi

# shellcheck disable=SC2086
printf '%s\n' $targets | xargs -P "${FUZZ_JOBS:-$(nproc)}" -I{} "$self" --run-one {}
for t in $targets; do
  cat "build-fuzz/results.d/$t" 2>/dev/null || echo "$t FAIL"
done >build-fuzz/results.txt
failed=$(grep -c ' FAIL$' build-fuzz/results.txt || true)
if [ "$failed" != 0 ]; then
  echo "fuzz: $failed of $(wc -l <build-fuzz/results.txt) targets found problems"
  exit 1
fi
echo "fuzz: all $(wc -l <build-fuzz/results.txt) targets clean for ${FUZZ_SECONDS:-10}s each"
