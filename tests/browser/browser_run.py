"""What the browser tests (test_dashboard.py, test_cors.py) share.

  require_browser()   exit 77 (skip) when a tool or playwright-core is missing
  pull()              a manifest (and, for an index, one platform's) and every blob, by GET
  run_page_test()     `node X.test.mjs` (chromium.mjs drives Debian's chromium)
  finish()            the wall time, each mirror's log tail on failure, the exit status
  stop_servers()      the mirrors, then the upstream, then the work dir
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402
from harness import ACCEPT_ALL  # noqa: E402


def require_browser(*tools):
    """Exit 77 (skip) when one of `tools`, node or chromium is not installed, or
    playwright-core is not (`npm ci` in tests/browser, as scripts/test.sh does)."""
    harness.require_tools(*tools, "node", "chromium")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        print("SKIP: playwright-core not installed: run `npm ci` in tests/browser", file=sys.stderr)
        sys.exit(77)


def pull(mirror, name, ref, platform=None, headers=None):
    """GETs the manifest NAME:REF, the `platform` manifest when it is an index, and every
    blob (each must answer 200 in full), with `headers` on every request. Returns how many
    requests it made."""
    n = 0

    def get(path):
        nonlocal n
        r = harness.request(mirror.url, "GET", path, {"Accept": ACCEPT_ALL, **(headers or {})})
        if r.status != 200 or not r.complete:
            raise RuntimeError(f"GET {path}: {r!r}")
        n += 1
        return r

    manifest = json.loads(get(f"/v2/{name}/manifests/{ref}").body)
    if "manifests" in manifest:
        child = next(m for m in manifest["manifests"]
                     if m["platform"]["architecture"] == platform)
        manifest = json.loads(get(f"/v2/{name}/manifests/{child['digest']}").body)
    for d in [manifest["config"], *manifest["layers"]]:
        get(f"/v2/{name}/blobs/{d['digest']}")
    return n


def run_page_test(script, env, timeout_s):
    """Runs `node SCRIPT` (a *.test.mjs in tests/browser) with `env`; True when it passed."""
    p = subprocess.run(["node", os.path.join(HERE, script)], env=env, timeout=timeout_s)
    return p.returncode == 0


def finish(test_file, started, ok, mirrors):
    """Prints the test's wall time (since `started`, time.monotonic()) and, when it failed,
    the end of each mirror's log. Returns the exit status: 0 passed, 1 failed."""
    print(f"{os.path.basename(test_file)}: {time.monotonic() - started:.1f}s", file=sys.stderr)
    if not ok:
        for m in mirrors:
            print(m.log()[-2000:], file=sys.stderr)
    return 0 if ok else 1


def stop_servers(mirrors, up, cleanup):
    """Stops every mirror, then the upstream, then removes the work dir (`cleanup`)."""
    for m in mirrors:
        m.stop()
    up.stop()
    cleanup()
