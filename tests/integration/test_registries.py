"""Several registries mirrored by one hubcache, configured by a config.yml (issue 15).

Two real upstreams, both Debian's docker-registry on loopback:
  * "hub": Docker Hub's token auth, the default upstream (proxy.remoteurl);
  * "ghcr.io" (as clients name it; it listens on loopback): htpasswd basic auth, listed
    under hubcache.upstreams with credentials and allow/deny rules.
Pulls are routed by containerd's ?ns= and by the path prefix /v2/ghcr.test/..., are
byte-identical to direct pulls, a layer both registries hold is fetched and stored once,
and a name of a registry that is not configured (or outside its rules) is refused with
no outbound connection, which both upstreams' access logs show.
"""
import json
import os
import sys
import tomllib
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
from harness import ACCEPT_ALL, compare_dirs, request, skopeo  # noqa: E402
from mirror import REPO_ROOT, Mirror, free_port, run_cli  # noqa: E402
from upstream import PUSH_PASSWORD, PUSH_USER, Upstream  # noqa: E402

GHCR = "ghcr.io"  # as the node names it; here a loopback registry


class S:
    work = None
    hub = None
    ghcr = None
    mirror = None


def setUpModule():
    harness.require_tools("docker-registry", "skopeo", "htpasswd")
    S.work, cleanup = harness.module_workdir("registries")
    unittest.addModuleCleanup(cleanup)
    S.hub = Upstream(S.work, name="hub")
    unittest.addModuleCleanup(S.hub.stop)
    S.hub.start()
    S.ghcr = Upstream(S.work, auth="basic", name="ghcr")
    unittest.addModuleCleanup(S.ghcr.stop)
    S.ghcr.start()
    # sharea (Docker Hub) and shareb (ghcr.test) share their first layer.
    fixtures.push(S.hub, S.work, "sharea")
    fixtures.push(S.ghcr, S.work, "shareb", repo="team/shareb")
    fixtures.push(S.ghcr, S.work, "docker2", repo="team/secret-app")
    fixtures.push(S.ghcr, S.work, "docker2", repo="other/app")
    S.sharea = fixtures.describe(S.hub, "sharea")
    S.shareb = fixtures.describe(S.ghcr, "shareb", repo="team/shareb")
    shared = set(S.sharea.layers) & set(S.shareb.layers)
    assert len(shared) == 1, "the fixtures should share one layer"
    S.shared_layer = shared.pop()

    port = free_port()
    S.config = os.path.join(S.work, "config.yml")
    with open(S.config, "w") as f:
        f.write(f"""version: 0.1
log:
  level: debug
http:
  addr: 127.0.0.1:{port}
storage:
  filesystem:
    rootdirectory: {os.path.join(S.work, "cache")}
proxy:
  remoteurl: {S.hub.url}
hubcache:
  prefetch: false
  upstreams:
    - name: {GHCR}
      url: {S.ghcr.url}
      username: {PUSH_USER}
      password: {PUSH_PASSWORD}
      tag_freshness: 1m
      allow: ["team/*"]
      deny: ["team/secret-*"]
""")
    S.mirror = Mirror(S.work, S.hub.url, port=port)
    # Everything from the file: no flags but the file itself.
    S.mirror.args = [S.mirror.args[0], "serve", S.config]
    S.mirror.start()
    unittest.addModuleCleanup(S.mirror.stop)


def sync_both():
    S.hub.sync_log()
    S.ghcr.sync_log()
    return S.hub.mark(), S.ghcr.mark()


def copy(image, name, src_creds=None):
    dest = os.path.join(S.work, name)
    args = ["copy", "--all", "--src-tls-verify=false"]
    args += ["--src-creds", src_creds] if src_creds else ["--src-no-creds"]
    skopeo(S.work, [], args + [f"docker://{image}", f"dir:{dest}"])
    return dest


class Registries(unittest.TestCase):
    def get(self, path, headers=None, method="GET"):
        h = {"Accept": ACCEPT_ALL}
        h.update(headers or {})
        return request(S.mirror.url, method, path, h)

    def test_1_path_prefix_pull_is_byte_identical(self):
        host = S.mirror.url.split("//")[1]
        via_mirror = copy(f"{host}/{GHCR}/team/shareb:1", "b-mirror")
        direct = copy(f"{S.ghcr.host}/team/shareb:1", "b-direct",
                      src_creds=f"{PUSH_USER}:{PUSH_PASSWORD}")
        self.assertEqual(compare_dirs(via_mirror, direct), [])
        # The mirror asked ghcr.test for the name it knows, with the configured credentials.
        S.ghcr.sync_log()
        asked = [line for line in S.ghcr.requests(path_regex=r"/v2/team/shareb/.*")
                 if line.ua.startswith("hubcache/")]
        self.assertTrue(asked)
        self.assertTrue(all(line.status < 400 for line in asked), asked)

    def test_2_the_shared_layer_is_fetched_and_stored_once(self):
        # The shared layer cached from ghcr.test: Docker Hub's image that holds it too
        # gets it from the cache.
        r = self.get(f"/v2/{GHCR}/team/shareb/blobs/{S.shared_layer}")
        self.assertEqual(r.status, 200, r)
        mark_hub, _ = sync_both()
        host = S.mirror.url.split("//")[1]
        via_mirror = copy(f"{host}/library/sharea:1", "a-mirror")
        direct = copy(f"{S.hub.host}/library/sharea:1", "a-direct")
        self.assertEqual(compare_dirs(via_mirror, direct), [])
        S.hub.sync_log()
        fetched = [line for line in S.hub.requests(since=mark_hub) if
                   line.ua.startswith("hubcache/") and line.path.endswith(S.shared_layer)]
        self.assertEqual(fetched, [])
        self.assertTrue([line for line in S.hub.requests(since=mark_hub)
                         if line.ua.startswith("hubcache/")], "the mirror asked Docker Hub")
        stored = [d for (kind, d) in harness.cache_objects(os.path.join(S.work, "cache"))
                  if d == S.shared_layer]
        self.assertEqual(len(stored), 1)

    def test_3_ns_routes_to_the_registry_by_name_or_address(self):
        for ns in (GHCR, S.ghcr.host):
            with self.subTest(ns=ns):
                r = self.get(f"/v2/team/shareb/manifests/1?ns={ns}")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("Docker-Content-Digest"), S.shareb.digest)
                self.assertEqual(r.body, S.shareb.raw)
                layer = S.shareb.layers[-1]
                b = self.get(f"/v2/team/shareb/blobs/{layer}?ns={ns}")
                self.assertEqual(b.status, 200, b)
                self.assertEqual("sha256:" + harness.sha256_hex(b.body), layer)
        # Tags are per registry: ghcr.test's team/shareb is not Docker Hub's.
        tags = self.get(f"/v2/team/shareb/tags/list?ns={GHCR}")
        self.assertEqual(tags.status, 200, tags)
        self.assertEqual(tags.json()["tags"], ["1"])
        hub = self.get("/v2/team/shareb/manifests/1?ns=docker.io")
        self.assertEqual(hub.status, 404, hub)

    def test_4_unconfigured_or_excluded_names_never_leave_the_mirror(self):
        layer = S.shareb.layers[-1]
        self.assertEqual(self.get(f"/v2/{GHCR}/team/shareb/blobs/{layer}").status, 200)
        mark_hub, mark_ghcr = sync_both()  # the layer is cached: still not served elsewhere
        refused = [
            "/v2/quay.io/team/shareb/manifests/1",
            f"/v2/quay.io/team/shareb/blobs/{layer}",
            "/v2/team/shareb/manifests/1?ns=quay.io",
            f"/v2/team/shareb/blobs/{layer}?ns=quay.io",
            "/v2/team/shareb/tags/list?ns=quay.io",
            f"/v2/{GHCR}/team/secret-app/manifests/1",   # denied
            f"/v2/{GHCR}/other/app/manifests/1",          # not allowed
            "/v2/other/app/manifests/1?ns=" + GHCR,
            f"/v2/{GHCR}/other/app/blobs/{layer}",
            "/v2/localhost/app/manifests/1",
        ]
        for path in refused:
            for method in ("GET", "HEAD"):
                with self.subTest(path=path, method=method):
                    r = self.get(path, method=method)
                    self.assertEqual(r.status, 404, r)
                    if method == "GET":
                        self.assertEqual(r.error_codes(), ["NAME_UNKNOWN"], r)
        S.hub.sync_log()
        S.ghcr.sync_log()
        # Nothing from anyone: the tests' own requests are left out, and the mirror sent none.
        self.assertEqual(S.hub.requests(since=mark_hub), [])
        self.assertEqual(S.ghcr.requests(since=mark_ghcr), [])

    def test_5_stats_metrics_and_access_log_name_the_registry(self):
        for path in (f"/v2/{GHCR}/team/shareb/manifests/1", f"/v2/team/shareb/manifests/1?ns={GHCR}",
                     "/v2/library/sharea/manifests/1"):
            self.assertEqual(self.get(path).status, 200, path)
        stats = self.get("/stats").json()
        registries = {r["registry"]: r for r in stats["upstream"]["registries"]}
        self.assertEqual(set(registries), {"docker.io", GHCR})
        self.assertEqual(registries[GHCR]["url"], S.ghcr.url)
        self.assertGreater(registries[GHCR]["requests_total"], 0)
        self.assertGreater(registries[GHCR]["bytes_received"], 0)
        self.assertGreater(registries["docker.io"]["requests_total"], 0)
        metrics = self.get("/metrics").body.decode()
        self.assertRegex(metrics, rf'hubcache_upstream_requests_total\{{registry="{GHCR}",'
                                  r'method="GET",code="200"\} [1-9]')
        self.assertRegex(metrics, rf'hubcache_upstream_received_bytes_total\{{registry="{GHCR}"'
                                  r'\} [1-9]')
        log = S.mirror.log()
        self.assertRegex(log, rf"path=/v2/{GHCR}/team/shareb/manifests/1 status=200 .* "
                              rf"registry={GHCR}")
        self.assertRegex(log, rf"path=/v2/team/shareb/manifests/1\?ns={GHCR} status=200 .* "
                              rf"registry={GHCR}")
        self.assertRegex(log, r"path=/v2/library/sharea/manifests/1 status=200 .* "
                              r"registry=docker.io")

    def test_6_ls_shows_the_registry_and_prewarm_takes_its_names(self):
        r = run_cli("prewarm", "--url", S.mirror.url, f"{GHCR}/team/shareb:1",
                    "quay.io/team/shareb:1", "sharea:1")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
        self.assertTrue(rows[f"{GHCR}/team/shareb:1"].endswith("ok"), r.stdout)
        self.assertIn("not mirrored here", rows["quay.io/team/shareb:1"])
        ls = run_cli("ls", "--json", env={"REGISTRY_CONFIGURATION_PATH": S.config})
        self.assertEqual(ls.returncode, 0, ls.stderr)
        names = {i["repository"] for i in json.loads(ls.stdout)}
        self.assertIn(f"{GHCR}/team/shareb", names)
        self.assertIn("library/sharea", names)

    def test_6b_readyz_checks_every_registry(self):
        r = self.get("/readyz")
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        checks = {c["registry"]: c for c in doc["registries"]}
        self.assertEqual(set(checks), {"docker.io", GHCR})
        for name, check in checks.items():
            # /v2/ answers 401 without credentials on both: reachable.
            self.assertIs(check["reachable"], True, (name, check))
            self.assertEqual(check["status"], 401, (name, check))
        self.assertEqual(doc["upstream"]["status"], checks["docker.io"]["status"])

    def test_6c_podman_style_clients_use_the_shipped_path_prefix_mirror(self):
        """deploy/registries.conf's ghcr.io entry, its mirror host made this hubcache and its
        location the loopback registry: skopeo (containers/image, as podman and CRI-O) pulls
        ghcr.io/team/shareb:1 through /v2/ghcr.io/... and never goes to the registry itself."""
        shipped = tomllib.loads(open(os.path.join(REPO_ROOT, "deploy", "registries.conf")).read())
        (entry,) = [r for r in shipped["registry"] if r["prefix"] == GHCR]
        (mirror_entry,) = entry["mirror"]
        self.assertEqual(mirror_entry["location"], f"mirror.example:5000/{GHCR}")
        host = S.mirror.url.split("//")[1]
        conf = os.path.join(S.work, "skopeo-config", "registries.conf")
        with open(conf, "w") as f:
            f.write(f'[[registry]]\nprefix = "{GHCR}"\nlocation = "{S.ghcr.host}"\n'
                    f'insecure = true\n\n[[registry.mirror]]\n'
                    f'location = "{mirror_entry["location"].replace("mirror.example:5000", host)}"\n'
                    f'insecure = true\n')
        self.addCleanup(lambda: open(conf, "w").close())
        _, mark = sync_both()
        dest = os.path.join(S.work, "b-podman")
        skopeo(S.work, [], ["copy", "--src-no-creds", f"docker://{GHCR}/team/shareb:1",
                            f"dir:{dest}"])
        self.assertRegex(S.mirror.log(), rf"path=/v2/{GHCR}/team/shareb/manifests/1 status=200")
        S.ghcr.sync_log()
        self.assertEqual([l for l in S.ghcr.requests(since=mark) if "skopeo" in l.ua], [],
                         "the client went to the registry itself: the mirror failed")
        direct = os.path.join(S.work, "b-podman-direct")
        skopeo(S.work, [], ["copy", "--src-tls-verify=false", "--src-creds",
                            f"{PUSH_USER}:{PUSH_PASSWORD}", f"docker://{S.ghcr.host}/team/shareb:1",
                            f"dir:{direct}"])
        self.assertEqual(compare_dirs(dest, direct), [])

    def test_7_check_config_reports_the_upstreams(self):
        r = run_cli("check-config", S.config)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"mirror  {GHCR} from {S.ghcr.url} (with credentials) allow team/* "
                      "deny team/secret-*", r.stdout)
        self.assertNotIn(PUSH_PASSWORD, r.stdout + r.stderr)


if __name__ == "__main__":
    harness.run_module(__file__)
