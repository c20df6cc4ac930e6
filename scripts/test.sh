#!/bin/sh
# Installs every package the build and the tests need, builds with warnings as
# errors, runs the unit and integration tests (they start their own upstream
# registry, token server and mirrors on loopback), and ends with a line
# "N passed, N failed".
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
/usr/bin/python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        result = json.loads(line).get("result")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
if skipped:
    print(f"({skipped} skipped)")
print(f"{passed} passed, {failed} failed")
PY
exit $status
