#!/usr/bin/env python3
"""The joxit docker-registry-ui's calls from another origin, in headless Debian chromium.

Starts the real upstream with library/docker2:1, a tiny http.server on another
127.0.0.1 port that serves the page (the UI's origin), and three mirrors: `open` with
the UI's CORS headers (REGISTRY_HTTP_HEADERS_*), `htpasswd` with the same headers and
client auth on (the page sends Authorization: Basic, so the preflight must pass without
credentials and the headers must allow them), and `bare` without any. Pulls the image
through each, then runs cors.test.mjs: the UI's catalog, tags, manifest (with its Accept
field, reading Docker-Content-Digest) and config blob calls succeed on `open` and
`htpasswd`, and the browser blocks them on `bare`, which proves the headers matter.
`open` and `htpasswd` also host `ui/*` with deletes on: skopeo pushes the image to
`ui/app:1` (with the user's credentials on `htpasswd`), and the page makes the same calls
on it and then the UI's `DELETE` of the manifest by digest (a preflighted method): 202,
and the manifest is gone (404) afterwards.

Exit status: 0 pass, 1 fail, 77 skip (chromium, node, docker-registry, skopeo, htpasswd
or playwright-core missing: `npm ci` in tests/browser, as scripts/test.sh does).
"""
import functools
import http.server
import json
import os
import sys
import threading
import time

from browser_run import finish, pull, require_browser, run_page_test, stop_servers
import fixtures  # noqa: E402  (tests/integration, on the path through browser_run)
import harness  # noqa: E402
from mirror import Mirror  # noqa: E402
from upstream import Upstream  # noqa: E402

NODE_TIMEOUT_S = 90
USER, PASSWORD = "ui-user", "ui-secret-1"
PAGE = b"<!doctype html><html><head><title>registry ui stand-in</title></head><body></body></html>"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_page(directory):
    """The UI's origin: a threading http.server on 127.0.0.1, port 0. Returns the server."""
    with open(os.path.join(directory, "ui.html"), "wb") as f:
        f.write(PAGE)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=directory))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def cors_env(origin):
    """The headers docker-registry-ui's README asks of the registry, in their env form."""
    return {
        "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin": f'["{origin}"]',
        "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Methods": "[HEAD, GET, OPTIONS, DELETE]",
        "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Headers":
            "[Authorization, Accept, Cache-Control]",
        "REGISTRY_HTTP_HEADERS_Access-Control-Expose-Headers": "[Docker-Content-Digest]",
        "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Credentials": "[true]",
    }


def main():
    require_browser("docker-registry", "skopeo", "htpasswd")
    started = time.monotonic()
    work, cleanup = harness.module_workdir("browser-cors")
    up = Upstream(work)
    mirrors = []
    site = None
    try:
        up.start()
        fixtures.push(up, work, "docker2")
        image = fixtures.describe(up, "docker2")
        site_dir = os.path.join(work, "site")
        os.makedirs(site_dir)
        site = serve_page(site_dir)
        origin = f"http://127.0.0.1:{site.server_address[1]}"
        htpasswd = harness.write_htpasswd(os.path.join(work, "users.htpasswd"), (USER, PASSWORD))
        auth_env = {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": htpasswd}
        specs = [("open", cors_env(origin), None),
                 ("htpasswd", {**cors_env(origin), **auth_env}, (USER, PASSWORD)),
                 ("bare", {}, None)]
        plan = []
        for name, env, creds in specs:
            d = os.path.join(work, name)
            os.makedirs(d)
            hosted_args = ["--hosted", "ui/*", "--delete-enabled", "true"] if env else []
            m = Mirror(d, up.url, env=env, extra_args=hosted_args)
            mirrors.append(m)
            m.start()
            # So that the catalog lists the repository.
            pull(m, image.repo, image.tag,
                 headers={"Authorization": harness.basic_auth(*creds)} if creds else None)
            entry = {"name": name, "url": m.url, "repo": image.repo, "tag": image.tag,
                     "digest": image.digest, "expect": "blocked" if name == "bare" else "ok"}
            if creds:
                entry.update(user=creds[0], password=creds[1])
            plan.append(entry)
            if name != "bare":
                # The UI browses and deletes what CI pushed to a hosted repository.
                creds_args = (["--src-creds", f"{creds[0]}:{creds[1]}",
                               "--dest-creds", f"{creds[0]}:{creds[1]}"] if creds
                              else ["--src-no-creds"])
                harness.skopeo(work, [], ["copy", "--src-tls-verify=false",
                                          "--dest-tls-verify=false", *creds_args,
                                          f"docker://127.0.0.1:{m.port}/{image.repo}:{image.tag}",
                                          f"docker://127.0.0.1:{m.port}/ui/app:1"])
                plan.append(dict(entry, name=name + "-hosted", repo="ui/app", tag="1",
                                 delete=True))

        env = dict(os.environ, PAGE_URL=origin + "/ui.html", MIRRORS=json.dumps(plan))
        ok = run_page_test("cors.test.mjs", env, NODE_TIMEOUT_S)
        # The page's Authorization and Accept fields made chromium send a preflight.
        preflights = mirrors[1].log().count("OPTIONS")
        print(f"{'ok  ' if preflights else 'FAIL'} the htpasswd mirror saw {preflights} "
              "OPTIONS preflight(s)")
        return finish(__file__, started, ok and preflights > 0, mirrors)
    finally:
        if site:
            site.shutdown()
            site.server_close()
        stop_servers(mirrors, up, cleanup)


if __name__ == "__main__":
    sys.exit(main())
