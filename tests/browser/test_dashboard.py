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
import os
import sys
import time

from browser_run import finish, pull, require_browser, run_page_test, stop_servers
import fixtures  # noqa: E402  (tests/integration, on the path through browser_run)
import harness  # noqa: E402
import hosted_push  # noqa: E402
from mirror import REPO_ROOT, Mirror, wait_until  # noqa: E402
from upstream import Upstream  # noqa: E402

ADMIN_TOKEN = "dashboard-test-admin-token"
NODE_TIMEOUT_S = 120


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
    require_browser("docker-registry", "skopeo", "openssl")
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
        ok = run_page_test("dashboard.test.mjs", env, NODE_TIMEOUT_S)
        return finish(__file__, started, ok, mirrors)
    finally:
        stop_servers(mirrors, up, cleanup)


if __name__ == "__main__":
    sys.exit(main())
