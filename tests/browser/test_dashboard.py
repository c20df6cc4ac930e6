#!/usr/bin/env python3
"""The dashboard in a real browser: headless Debian chromium, driven by playwright-core.

Starts the real upstream (docker-registry + token server) with library/docker2:1 and
library/multi:1, and two mirrors (both hosting `dash/*`): one plain, one with an admin
token. Pulls images through both (cold, then warm), pushes a small image into each one's
hosted dash/app (tags 1 and 2), waits until /stats counts every request, then runs
dashboard.test.mjs, which loads each dashboard and checks it against /stats, and saves a
screenshot of the plain one to $HUBCACHE_ARTIFACTS/dashboard.png (default build/artifacts).

Exit status: 0 pass, 1 fail, 77 skip (chromium, node, docker-registry, skopeo or
playwright-core missing: `npm ci` in tests/browser, as scripts/test.sh does).
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(os.path.dirname(HERE), "integration")
sys.path.insert(0, INTEGRATION)

import fixtures  # noqa: E402
import harness  # noqa: E402
import hosted_push  # noqa: E402
from harness import ACCEPT_ALL  # noqa: E402
from mirror import REPO_ROOT, Mirror, wait_until  # noqa: E402
from upstream import Upstream  # noqa: E402

ADMIN_TOKEN = "dashboard-test-admin-token"
NODE_TIMEOUT_S = 120


def pull(mirror, name, ref, platform=None):
    """GETs a manifest by tag, the platform manifest (for an index) and every blob."""
    n = 0

    def get(path):
        nonlocal n
        r = harness.request(mirror.url, "GET", path, {"Accept": ACCEPT_ALL})
        if r.status != 200 or not r.complete:
            raise RuntimeError(f"GET {path}: {r!r}")
        n += 1
        return r

    top = json.loads(get(f"/v2/{name}/manifests/{ref}").body)
    manifest = top
    if "manifests" in top:
        child = next(m for m in top["manifests"] if m["platform"]["architecture"] == platform)
        manifest = json.loads(get(f"/v2/{name}/manifests/{child['digest']}").body)
    for d in [manifest["config"], *manifest["layers"]]:
        get(f"/v2/{name}/blobs/{d['digest']}")
    return n


def fills_done(mirror):
    """Waits until every download is committed, so that the next pull is a hit."""
    wait_until(lambda: harness.request(mirror.url, "GET", "/stats?repositories=0").json()
               ["fills"]["in_flight"] == 0, 20, "the downloads to be committed")


def settle(mirror, total):
    def counted():
        s = harness.request(mirror.url, "GET", "/stats?repositories=0").json()
        return s["requests"]["manifest"]["requests"] + s["requests"]["blob"]["requests"] == total
    wait_until(counted, 10, f"/stats to count {total} requests")


def main():
    harness.require_tools("docker-registry", "skopeo", "openssl", "node", "chromium")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        print("SKIP: playwright-core not installed: run `npm ci` in tests/browser", file=sys.stderr)
        return 77
    artifacts = os.environ.get("HUBCACHE_ARTIFACTS") or os.path.join(REPO_ROOT, "build",
                                                                      "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    screenshot = os.path.join(artifacts, "dashboard.png")
    started = time.monotonic()
    work, cleanup = harness.module_workdir("browser")
    up = Upstream(work)
    mirrors = []
    try:
        up.start()
        fixtures.push(up, work, "docker2")
        fixtures.push(up, work, "multi")
        for name, args in (("plain", ()), ("admin", ("--admin-token", ADMIN_TOKEN))):
            d = os.path.join(work, name)
            os.makedirs(d)
            m = Mirror(d, up.url, extra_args=("--access-log", "off", "--hosted", "dash/*", *args))
            mirrors.append(m)
            m.start()
        plain, admin = mirrors
        n = pull(plain, "library/docker2", "1")  # cold
        n += pull(plain, "multi", "1", platform="amd64")  # cold, by the short name
        fills_done(plain)
        n += pull(plain, "library/docker2", "1")  # warm
        n += pull(plain, "multi", "1", platform="amd64")
        settle(plain, n)
        settle(admin, pull(admin, "library/docker2", "1"))
        image = hosted_push.make_image("dash/app", [b"a hosted layer " * 100])
        for m in mirrors:
            hosted_push.push_image(m.url, "dash/app", "1", image)
            hosted_push.put_manifest(m.url, "dash/app", "2", image["manifest"])

        env = dict(os.environ, MIRROR_URL=plain.url, ADMIN_MIRROR_URL=admin.url,
                   ADMIN_TOKEN=ADMIN_TOKEN, SCREENSHOT=screenshot)
        p = subprocess.run(["node", os.path.join(HERE, "dashboard.test.mjs")], env=env,
                           timeout=NODE_TIMEOUT_S)
        print(f"{os.path.basename(__file__)}: {time.monotonic() - started:.1f}s", file=sys.stderr)
        if p.returncode != 0:
            for m in mirrors:
                print(m.log()[-2000:], file=sys.stderr)
        return 0 if p.returncode == 0 else 1
    finally:
        for m in mirrors:
            m.stop()
        up.stop()
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
