#!/usr/bin/env python3
"""What the mirror reports about itself: /stats, /metrics, the access log, health, `hubcache stats`.

KnownSequence drives one mirror (--tag-freshness 0s, so every tag request revalidates)
through a fixed sequence of pulls against the real docker-registry upstream, one request at
a time, and then asserts the exact counters in /stats and /metrics:

  cold   library/docker2:1 (manifest + config + 2 layers), then multi:1's index, its
         linux/amd64 manifest and blobs (by the short name `multi`)
  warm   library/docker2:1 again: a tag revalidated unchanged (HEAD), blobs from cache
  error  an unknown tag (404)
  stale  the upstream stopped: docker2:1 served stale; the uncached linux/arm64 manifest
         and layer fail

TagRevalidation moves a tag on the in-process fake upstream to get each outcome of a
revalidation once (unchanged, moved, upstream failing, tag gone). Coalesced drives another
mirror against the fake, whose layer is throttled so that every client of a burst joins the
one download in flight; it also checks the last Docker Hub RateLimit-* headers seen.
Settings checks that bad values of the new settings stop the start. Every expected figure is computed from the
fixtures' own sizes, and the upstream's access log is the witness for the upstream counts.
/metrics is checked by `promtool check metrics` (Debian's prometheus package).
"""
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from fake_upstream import FakeRegistry  # noqa: E402
from harness import ACCEPT_ALL  # noqa: E402
from mirror import Mirror, hubcache_bin, wait_until  # noqa: E402
from upstream import Upstream  # noqa: E402

S = harness.ModuleState()  # the work dir


def setUpModule():
    S.work = harness.cleaned_workdir("stats", unittest.addModuleCleanup)


def get_json(mirror, path):
    r = harness.request(mirror.url, "GET", path, timeout=30)
    if r.status != 200:
        raise AssertionError(f"GET {path}: {r!r}")
    return r.json()


def registry_requests(stats):
    return stats["requests"]["manifest"]["requests"] + stats["requests"]["blob"]["requests"]


def settled_stats(mirror, registry_total, timeout_s=10):
    """/stats once it counts `registry_total` manifest and blob requests: a request is
    counted just after its response is written, so the client can be a moment ahead."""
    return wait_until(lambda: (lambda s: s if registry_requests(s) == registry_total else None)(
        get_json(mirror, "/stats")), timeout_s, f"/stats to count {registry_total} requests")


def promtool_check(body):
    """`promtool check metrics` on a /metrics body: (its exit status, what it printed)."""
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                       timeout=60)
    return p.returncode, p.stdout.decode() + p.stderr.decode()


def parse_metrics(text):
    """{(name, ((label, value), ...)): float} for every sample line."""
    out = {}
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = sample.match(line)
        if not m:
            raise AssertionError(f"not a sample line: {line!r}")
        labels = tuple(sorted(label.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(metrics, name, **labels):
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


class KnownSequence(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = Upstream(S.work)
        cls.addClassCleanup(cls.up.stop)
        cls.up.start()
        fixtures.push(cls.up, S.work, "docker2")
        fixtures.push(cls.up, S.work, "multi")
        cls.d2 = fixtures.describe(cls.up, "docker2")
        cls.multi = fixtures.describe(cls.up, "multi")
        children = {p["architecture"]: d for p, d in cls.multi.children}
        cls.amd64, cls.arm64 = children["amd64"], children["arm64"]

        def blobs_of(manifest_digest):
            m = json.loads(cls.multi.manifests[manifest_digest][1])
            return [(d["digest"], d["size"]) for d in [m["config"], *m["layers"]]]

        cls.amd64_blobs = blobs_of(cls.amd64)
        cls.arm64_layer = blobs_of(cls.arm64)[1]
        cls.d2_blobs = list(cls.d2.blobs.items())

        d = os.path.join(S.work, "sequence")
        os.makedirs(d)
        cls.access_log = os.path.join(d, "access.jsonl")
        # Without prefetch: the sequence names the outcome of every request, and a
        # prefetch would turn its misses into hits at its own pace (test_prefetch.py).
        cls.m = Mirror(d, cls.up.url, extra_args=(
            "--tag-freshness", "0s", "--access-log", cls.access_log,
            "--access-log-format", "json", "--upstream-connect-timeout", "3s",
            "--prefetch", "false"))
        cls.addClassCleanup(cls.m.stop)
        cls.m.start()
        cls.up.sync_log()
        cls.mark = cls.up.mark()
        cls.token_mark = cls.up.token_mark()
        cls.sent = []  # (method, path, status, cache) of every registry request, in order
        cls.run_sequence()

    @classmethod
    def call(cls, method, path, want_status, want_cache, body=None, headers=None):
        r = harness.request(cls.m.url, method, path, headers or {"Accept": ACCEPT_ALL})
        where = f"{method} {path}"
        if r.status != want_status or r.header("X-Hubcache-Cache") != want_cache:
            raise AssertionError(f"{where}: want {want_status} {want_cache}, got {r!r}\n"
                                 f"{cls.m.log()[-3000:]}")
        if body is not None and r.body != body:
            raise AssertionError(f"{where}: wrong body ({len(r.body)} bytes)")
        cls.sent.append((method, path, r.status, want_cache))
        return r

    @classmethod
    def blob_bytes(cls, digest):
        return open(fixtures.blob_path(cls.multi_or_d2(digest), digest), "rb").read()

    @classmethod
    def multi_or_d2(cls, digest):
        return "docker2" if digest in cls.d2.blobs else "multi"

    @classmethod
    def wait_fills_done(cls):
        """A client has all its bytes once they verified, a moment before the file is
        committed to the store: until then a new request joins the fill (a miss)."""
        wait_until(lambda: get_json(cls.m, "/stats?repositories=0")["fills"]["in_flight"] == 0,
                   20, "the downloads to be committed")

    @classmethod
    def run_sequence(cls):
        d2_tag = "/v2/library/docker2/manifests/1"
        # Cold: everything comes from the upstream.
        cls.call("GET", d2_tag, 200, "miss", cls.d2.raw)
        for digest, _ in cls.d2_blobs:
            cls.call("GET", f"/v2/library/docker2/blobs/{digest}", 200, "miss",
                     cls.blob_bytes(digest))
        # Warm: the tag is revalidated with a HEAD and served from cache, blobs too.
        cls.wait_fills_done()
        cls.call("GET", d2_tag, 200, "hit", cls.d2.raw)
        for digest, _ in cls.d2_blobs:
            cls.call("GET", f"/v2/library/docker2/blobs/{digest}", 200, "hit",
                     cls.blob_bytes(digest))
        cls.call("GET", "/v2/library/docker2/manifests/nope", 404, None)
        # Cold again, under the short name.
        cls.call("GET", "/v2/multi/manifests/1", 200, "miss", cls.multi.raw)
        cls.call("GET", f"/v2/multi/manifests/{cls.amd64}", 200, "miss",
                 cls.multi.manifests[cls.amd64][1])
        for digest, _ in cls.amd64_blobs:
            cls.call("GET", f"/v2/multi/blobs/{digest}", 200, "miss", cls.blob_bytes(digest))
        cls.wait_fills_done()
        cls.call("HEAD", f"/v2/library/multi/blobs/{cls.amd64_blobs[1][0]}", 200, "hit", b"")
        # Stale: the upstream is gone.
        cls.up.sync_log()
        cls.up.stop()
        try:
            cls.call("GET", d2_tag, 200, "stale", cls.d2.raw)
            r = cls.call("GET", f"/v2/library/multi/manifests/{cls.arm64}", 503, None)
            if "UNAVAILABLE" not in r.error_codes():
                raise AssertionError(f"want a registry UNAVAILABLE error: {r!r}")
            cls.call("GET", f"/v2/library/multi/blobs/{cls.arm64_layer[0]}", 503, None)
            cls.ready_while_down = harness.request(cls.m.url, "GET", "/readyz")
        finally:
            cls.up.start()

    # -- expected figures, from the fixtures' sizes ----------------------------------------------

    @property
    def sizes(self):
        d2_manifest = len(self.d2.raw)
        d2_blobs = sum(size for _, size in self.d2_blobs)
        index = len(self.multi.raw)
        amd64_manifest = len(self.multi.manifests[self.amd64][1])
        amd64_blobs = sum(size for _, size in self.amd64_blobs)
        return d2_manifest, d2_blobs, index, amd64_manifest, amd64_blobs

    def expected(self):
        d2_manifest, d2_blobs, index, amd64_manifest, amd64_blobs = self.sizes
        e = {}
        e["requests"] = {
            "manifest": {"requests": 7, "hits": 1, "misses": 3, "stale": 1, "errors": 2},
            "blob": {"requests": 11, "hits": 4, "misses": 6, "stale": 0, "errors": 1},
            "tag_revalidation": {"requests": 2, "hits": 1, "misses": 0, "stale": 1, "errors": 0},
        }
        from_cache = 2 * d2_manifest + d2_blobs
        from_upstream = d2_manifest + d2_blobs + index + amd64_manifest + amd64_blobs
        e["bytes"] = {
            "served": from_cache + from_upstream,
            "served_from_cache": from_cache,
            "served_from_upstream": from_upstream,
            "fetched_upstream": from_upstream,
            "fetched_upstream_blobs": d2_blobs + amd64_blobs,
            "fetched_upstream_manifests": d2_manifest + index + amd64_manifest,
            "saved": from_cache,
        }
        e["fills"] = {"in_flight": 0, "started": 7, "coalesced": 0, "failed": 1}
        e["cache_size"] = from_upstream
        e["top"] = [("library/docker2", 3 * d2_manifest + 2 * d2_blobs, 9),
                    ("library/multi", index + amd64_manifest + amd64_blobs, 6)]
        e["top"].sort(key=lambda t: -t[1])
        # Upstream requests as the registry answered them: the first request learns the
        # token challenge (401), the rest carry a token; three found the upstream gone.
        e["upstream"] = {("GET", 200): 9, ("GET", 401): 1, ("GET", 404): 1, ("HEAD", 200): 1,
                         ("HEAD", 0): 1, ("GET", 0): 2}
        return e

    # -- /stats -----------------------------------------------------------------------------------

    def stats(self):
        return settled_stats(self.m, len(self.sent))

    def stats_with_cache(self):
        """/stats once the index holds every object: a blob is indexed just after its last
        byte went out, and the listing is re-read when the cache size moves."""
        self.stats()
        size = self.expected()["cache_size"]
        return wait_until(lambda: (lambda s: s if s["cache"]["entries"] == 9
                                   and s["cache"]["size_bytes"] == size else None)(
            get_json(self.m, "/stats")), 10, "the cache listing to catch up")

    def test_requests_by_kind(self):
        s = self.stats()
        self.assertEqual(s["requests"], self.expected()["requests"])
        self.assertAlmostEqual(s["hit_ratio"]["requests"], 6 / 15)

    def test_bytes_and_bandwidth_saved(self):
        s = self.stats()
        e = self.expected()
        self.assertEqual(s["bytes"], e["bytes"])
        self.assertAlmostEqual(s["hit_ratio"]["bytes"],
                               e["bytes"]["served_from_cache"] / e["bytes"]["served"])

    def test_fills_and_cache(self):
        s = self.stats_with_cache()
        e = self.expected()
        self.assertEqual(s["fills"], e["fills"])
        c = s["cache"]
        self.assertEqual(c["size_bytes"], e["cache_size"])
        self.assertEqual((c["blobs"], c["manifests"], c["entries"]), (6, 3, 9))
        self.assertEqual((c["max_size_bytes"], c["evictions"], c["evicted_bytes"],
                          c["write_errors"]), (0, 0, 0, 0))

    def test_upstream_counts_match_the_registry_log(self):
        s = self.stats()
        e = self.expected()["upstream"]
        got = {(r["method"], r["status"]): r["count"] for r in s["upstream"]["requests"]}
        self.assertEqual(got, e)
        self.assertEqual(s["upstream"]["requests_total"], sum(e.values()))
        self.assertEqual(s["upstream"]["transport_errors"], 3)
        self.assertEqual(s["upstream"]["errors"], 3)
        self.assertEqual(s["upstream"]["ratelimit"],
                         {"limit": None, "remaining": None, "seen_at_ms": None})
        # The witness: what the registry itself logged (while it was up).
        self.up.sync_log()
        seen = {}
        for line in self.up.requests(None, r"/v2/.*", since=self.mark):
            seen[(line.method, line.status)] = seen.get((line.method, line.status), 0) + 1
        self.assertEqual(seen, {k: v for k, v in e.items() if k[1] != 0})
        tokens = self.up.token_requests(since=self.token_mark)
        self.assertEqual(s["upstream"]["token_fetches"], len(tokens), tokens)
        self.assertEqual(len(tokens), 2, tokens)

    def test_repositories(self):
        s = self.stats_with_cache()
        e = self.expected()
        top = [(r["repository"], r["bytes_served"], r["requests"]) for r in s["top_repositories"]]
        self.assertEqual(top, e["top"])
        d2_manifest, d2_blobs, index, amd64_manifest, amd64_blobs = self.sizes
        repos = {r["name"]: r for r in s["repositories"]}
        self.assertEqual(sorted(repos), ["library/docker2", "library/multi"])
        d2 = repos["library/docker2"]
        self.assertEqual([(t["tag"], t["digest"], t["size_bytes"]) for t in d2["tags"]],
                         [("1", self.d2.digest, d2_manifest + d2_blobs)])
        multi = repos["library/multi"]
        self.assertEqual([(t["tag"], t["digest"], t["size_bytes"]) for t in multi["tags"]],
                         [("1", self.multi.digest, index + amd64_manifest + amd64_blobs)])
        self.assertEqual(multi["size_bytes"], index + amd64_manifest + amd64_blobs)
        now_ms = s["now_ms"]
        for repo in repos.values():
            self.assertTrue(now_ms - 600_000 < repo["last_used_ms"] <= now_ms, repo)

    def test_http_routes_and_latency(self):
        s = self.stats()
        routes = s["http"]["routes"]
        self.assertEqual(routes["manifest"]["requests"], 7)
        self.assertEqual(routes["manifest"]["status"], {"2xx": 5, "4xx": 1, "5xx": 1})
        self.assertEqual(routes["blob"]["status"], {"2xx": 10, "5xx": 1})
        self.assertEqual(routes["blob"]["cache"], {"hit": 4, "miss": 6})
        for route in ("manifest", "blob"):
            lat = routes[route]["latency_seconds"]
            self.assertEqual(lat["count"], routes[route]["requests"])
            self.assertGreater(lat["sum"], 0)
            self.assertLessEqual(lat["p50"], lat["p90"])
            self.assertLessEqual(lat["p90"], lat["p99"])

    # -- /metrics ---------------------------------------------------------------------------------

    def test_metrics_match_stats(self):
        self.stats_with_cache()
        r = harness.request(self.m.url, "GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/plain; version=0.0.4"), r)
        text = r.body.decode()
        mt = parse_metrics(text)
        names = {name for name, _ in mt}
        self.assertTrue(all(n.startswith("hubcache_") for n in names), names)
        e = self.expected()
        for kind, counts in e["requests"].items():
            for result, key in (("hit", "hits"), ("miss", "misses"), ("stale", "stale"),
                                ("error", "errors")):
                with self.subTest(kind=kind, result=result):
                    self.assertEqual(metric(mt, "hubcache_requests_total", kind=kind,
                                            result=result), counts[key])
        b = e["bytes"]
        self.assertEqual(metric(mt, "hubcache_served_bytes_total", source="cache"),
                         b["served_from_cache"])
        self.assertEqual(metric(mt, "hubcache_served_bytes_total", source="upstream"),
                         b["served_from_upstream"])
        self.assertEqual(metric(mt, "hubcache_upstream_fetched_bytes_total", kind="blob"),
                         b["fetched_upstream_blobs"])
        self.assertEqual(metric(mt, "hubcache_upstream_fetched_bytes_total", kind="manifest"),
                         b["fetched_upstream_manifests"])
        self.assertEqual(metric(mt, "hubcache_bandwidth_saved_bytes"), b["saved"])
        self.assertEqual(metric(mt, "hubcache_fills_started_total"), 7)
        self.assertEqual(metric(mt, "hubcache_fills_failed_total"), 1)
        self.assertEqual(metric(mt, "hubcache_fills_coalesced_total"), 0)
        self.assertEqual(metric(mt, "hubcache_fills_in_flight"), 0)
        self.assertEqual(metric(mt, "hubcache_cache_size_bytes"), e["cache_size"])
        self.assertEqual(metric(mt, "hubcache_cache_objects", kind="blob"), 6)
        self.assertEqual(metric(mt, "hubcache_cache_objects", kind="manifest"), 3)
        self.assertAlmostEqual(metric(mt, "hubcache_hit_ratio", by="requests"), 0.4)
        for (method, status), n in e["upstream"].items():
            code = "none" if status == 0 else str(status)
            self.assertEqual(metric(mt, "hubcache_upstream_requests_total", registry="docker.io",
                                    method=method, code=code), n, (method, code))
        self.assertEqual(metric(mt, "hubcache_upstream_transport_errors_total",
                                registry="docker.io"), 3)
        self.assertEqual(metric(mt, "hubcache_upstream_token_fetches_total",
                                registry="docker.io"), 2)
        for repo, nbytes, requests in e["top"]:
            self.assertEqual(metric(mt, "hubcache_repository_served_bytes_total",
                                    repository=repo), nbytes)
            self.assertEqual(metric(mt, "hubcache_repository_requests_total",
                                    repository=repo), requests)
        # The latency histogram: cumulative buckets ending in +Inf == _count == requests.
        buckets = sorted(((float(dict(lbl)["le"]), v) for (n, lbl), v in mt.items()
                          if n == "hubcache_http_request_duration_seconds_bucket"
                          and dict(lbl).get("route") == "blob"))
        self.assertEqual(buckets[-1], (float("inf"), 11))
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
        self.assertEqual(metric(mt, "hubcache_http_request_duration_seconds_count", route="blob"),
                         11)
        self.assertEqual(metric(mt, "hubcache_http_requests_total", route="blob", cache="hit",
                                code="2xx"), 4)
        # promtool parses and lints it.
        status, findings = promtool_check(r.body)
        self.assertEqual(status, 0, findings)
        self.assertEqual(findings.strip(), "", "promtool lint findings")

    # -- access log -------------------------------------------------------------------------------

    def test_access_log_has_one_line_per_request(self):
        self.stats()

        def registry_lines():
            try:
                with open(self.access_log) as f:
                    lines = [json.loads(line) for line in f if line.strip()]
            except (OSError, ValueError):
                return None
            # Registry requests, less the readiness pings of Mirror.start().
            lines = [x for x in lines if x["path"].startswith("/v2/") and x["path"] != "/v2/"]
            return lines if len(lines) >= len(self.sent) else None

        lines = wait_until(registry_lines, 10, "the access log to catch up")
        # Each line is queued as its response ends, so neighbours may swap places.
        self.assertEqual(sorted((x["method"], x["path"], x["status"], x["cache"] or "")
                                for x in lines),
                         sorted((m, p, st, c or "") for m, p, st, c in self.sent))
        d2_blob, d2_size = self.d2_blobs[0]
        hits = [x for x in lines if x["path"].endswith(d2_blob) and x["cache"] == "hit"]
        self.assertEqual(len(hits), 1, hits)
        self.assertEqual(hits[0]["bytes"], d2_size)
        self.assertEqual(hits[0]["client"], "127.0.0.1")
        self.assertGreaterEqual(hits[0]["duration_ms"], 0)
        self.assertRegex(hits[0]["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        head = [x for x in lines if x["method"] == "HEAD"]
        self.assertEqual([x["bytes"] for x in head], [0])
        s = get_json(self.m, "/stats")
        self.assertTrue(s["access_log"]["enabled"])
        self.assertEqual(s["access_log"]["format"], "json")
        self.assertEqual(s["access_log"]["dropped"], 0)

    # -- health, dashboard, CLI ---------------------------------------------------------------

    def test_health_and_readiness(self):
        r = harness.request(self.m.url, "GET", "/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"), r)
        down = self.ready_while_down
        self.assertEqual(down.status, 200, f"the upstream is not required: {down!r}")
        doc = down.json()
        self.assertTrue(doc["ready"], doc)
        self.assertTrue(doc["cache_writable"]["ok"] and doc["index"]["ok"], doc)
        self.assertIs(doc["upstream"]["reachable"], False, doc)
        self.assertIn("upstream", doc)

    def test_history_for_the_chart(self):
        s = self.stats()
        h = get_json(self.m, "/stats/history")
        self.assertEqual(h["interval_ms"], 5000)
        last = h["samples"][-1]  # "now"
        self.assertEqual(last["served_bytes"], s["bytes"]["served"])
        self.assertEqual(last["served_from_cache_bytes"], s["bytes"]["served_from_cache"])
        self.assertEqual(last["fetched_bytes"], s["bytes"]["fetched_upstream"])
        self.assertEqual(last["hits"], 6)
        self.assertEqual(last["misses"], 9)
        self.assertGreaterEqual(len(h["samples"]), 2)
        self.assertEqual([x["t_ms"] for x in h["samples"]], sorted(x["t_ms"] for x in h["samples"]))

    def test_dashboard_is_one_self_contained_page(self):
        r = harness.request(self.m.url, "GET", "/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        self.assertIn("default-src 'none'", r.header("Content-Security-Policy"))
        html = r.body.decode()
        self.assertIn("<title>hubcache</title>", html)
        self.assertIsNone(re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html),
                          "the page must load nothing from elsewhere")
        self.assertIn('fetch("/stats"', html)
        self.assertEqual(harness.request(self.m.url, "GET", "/ui").body, r.body)
        for path in ("/stats", "/metrics", "/"):
            r = harness.request(self.m.url, "POST", path, body=b"")
            self.assertEqual(r.status, 405, r)
        r = harness.request(self.m.url, "GET", "/no-such-page")
        self.assertEqual(r.status, 404, r)

    def test_cli_stats(self):
        s = self.stats()
        p = subprocess.run([hubcache_bin(), "stats", "--url", self.m.url], capture_output=True,
                           timeout=30)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertRegex(out, r"manifests\s+7\s+1\s+3\s+1\s+2\n")
        self.assertRegex(out, r"blobs\s+11\s+4\s+6\s+0\s+1\n")
        self.assertRegex(out, r"tag revalidations\s+2\s+1\s+0\s+1\s+0\n")
        self.assertIn("40.0% of requests", out)
        self.assertIn("library/docker2", out)
        p = subprocess.run([hubcache_bin(), "stats", "--json", f"--url={self.m.url}/"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        doc = json.loads(p.stdout)
        self.assertEqual(doc["requests"], s["requests"])
        self.assertEqual(doc["bytes"], s["bytes"])
        self.assertIsNone(doc["repositories"], "the CLI does not ask for the listing")
        p = subprocess.run([hubcache_bin(), "stats", "--url", "http://127.0.0.1:1"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot reach", p.stderr.decode())
        p = subprocess.run([hubcache_bin(), "stats", "--bogus"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)


class Settings(unittest.TestCase):
    def serve(self, *args):
        return subprocess.run([hubcache_bin(), "serve", "--root", os.path.join(S.work, "bad"),
                               *args], capture_output=True, timeout=30)

    def test_invalid_settings_stop_the_start(self):
        cases = [(("--access-log-format", "yaml"), "HUBCACHE_ACCESS_LOG_FORMAT"),
                 (("--stats-access", "maybe"), "HUBCACHE_STATS_ACCESS"),
                 (("--stats-access", "auth"), "needs client authentication")]
        for args, want in cases:
            with self.subTest(args=args):
                p = self.serve(*args)
                self.assertEqual(p.returncode, 2, p)
                self.assertIn(want, p.stderr.decode())

    def test_unwritable_access_log_fails_the_start(self):
        p = self.serve("--addr", "127.0.0.1:0", "--access-log", "/nonexistent/dir/access.log")
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("/nonexistent/dir/access.log", p.stderr.decode())


class TagRevalidation(unittest.TestCase):
    """Each outcome of a revalidation once, against the fake upstream (a tag that moves)."""

    def test_every_outcome_is_counted(self):
        fake = FakeRegistry().start()
        self.addCleanup(fake.stop)
        first = fake.add_image("stats/moving", "1", layer_bytes=b"first layer")
        second = fake.add_image("stats/moving", "2", layer_bytes=b"second layer")
        d = os.path.join(S.work, "revalidation")
        os.makedirs(d)
        m = Mirror(d, fake.url, extra_args=("--tag-freshness", "0s", "--access-log", "off",
                                            "--upstream-connect-timeout", "3s"))
        self.addCleanup(m.stop)
        m.start()
        path = "/v2/stats/moving/manifests/1"

        def get(status, cache, body=None):
            r = harness.request(m.url, "GET", path, {"Accept": ACCEPT_ALL})
            self.assertEqual((r.status, r.header("X-Hubcache-Cache")), (status, cache), r)
            if body is not None:
                self.assertEqual(r.body, body)

        get(200, "miss", first["manifest"])  # cold: fetched, no revalidation
        get(200, "hit", first["manifest"])  # unchanged upstream
        fake.tag("stats/moving", "1", second["manifest_digest"])
        get(200, "miss", second["manifest"])  # moved: fetched again
        fake.set_fault("1", "status_500")
        get(200, "stale", second["manifest"])  # upstream failing: served stale
        fake.clear_fault()
        fake.tag("stats/moving", "1", "sha256:" + "0" * 64)
        get(404, None)  # the tag is gone upstream: nothing to serve

        s = settled_stats(m, 5)
        self.assertEqual(s["requests"]["tag_revalidation"],
                         {"requests": 4, "hits": 1, "misses": 1, "stale": 1, "errors": 1})
        self.assertEqual(s["requests"]["manifest"],
                         {"requests": 5, "hits": 1, "misses": 2, "stale": 1, "errors": 1})
        mt = parse_metrics(harness.request(m.url, "GET", "/metrics").body.decode())
        for result, n in (("hit", 1), ("miss", 1), ("stale", 1), ("error", 1)):
            self.assertEqual(metric(mt, "hubcache_requests_total", kind="tag_revalidation",
                                    result=result), n, result)
        heads = fake.requests(method="HEAD", path_contains=path)
        self.assertEqual(len([h for h in heads if h.status != 401]), 4, heads)


class Coalesced(unittest.TestCase):
    """A burst of clients on one cold blob: one download, everyone else joins it."""

    CLIENTS = 6
    LAYER_BYTES = 384 * 1024
    RATE = 128 * 1024  # bytes/s: the download lasts ~3 s, the burst arrives in milliseconds

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeRegistry().start()
        cls.addClassCleanup(cls.fake.stop)
        layer = bytes((i * 7 + 3) % 251 for i in range(cls.LAYER_BYTES))
        cls.image = cls.fake.add_image("stats/app", "1", layer_bytes=layer)
        d = os.path.join(S.work, "coalesced")
        os.makedirs(d)
        cls.m = Mirror(d, cls.fake.url, extra_args=("--access-log", "off"))
        cls.addClassCleanup(cls.m.stop)
        cls.m.start()

    def test_burst_joins_one_download(self):
        digest = self.image["layer_digest"]
        path = f"/v2/stats/app/blobs/{digest}"
        self.fake.set_fault(digest, "slow", rate=self.RATE)
        barrier = threading.Barrier(self.CLIENTS)
        results = [None] * self.CLIENTS

        def client(i):
            conn = http.client.HTTPConnection("127.0.0.1", self.m.port, timeout=60)
            try:
                barrier.wait(timeout=30)
                conn.request("GET", path, headers={"User-Agent": harness.TEST_UA})
                r = conn.getresponse()
                results[i] = (r.status, r.getheader("X-Hubcache-Cache"), r.read())
            except Exception as e:  # reported below
                results[i] = e
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(self.CLIENTS)]
        for t in threads:
            t.start()
        # Every client is counted as a follower while the first download still runs.
        joined = wait_until(lambda: (lambda s: s if s["fills"]["coalesced"] == self.CLIENTS - 1
                                     else None)(get_json(self.m, "/stats?repositories=0")),
                            20, "all clients to join the download")
        self.assertEqual(joined["fills"]["in_flight"], 1)
        for t in threads:
            t.join(timeout=60)
        for i, r in enumerate(results):
            self.assertEqual(r, (200, "miss", self.image["layer"]), f"client {i}")
        # A late client is a hit, once the verified file is in the store.
        wait_until(lambda: get_json(self.m, "/stats?repositories=0")["fills"]["in_flight"] == 0,
                   20, "the download to be committed")
        r = harness.request(self.m.url, "GET", path)
        self.assertEqual((r.status, r.header("X-Hubcache-Cache")), (200, "hit"), r)

        s = settled_stats(self.m, self.CLIENTS + 1)
        n = self.LAYER_BYTES
        self.assertEqual(s["requests"]["blob"],
                         {"requests": self.CLIENTS + 1, "hits": 1, "misses": self.CLIENTS,
                          "stale": 0, "errors": 0})
        self.assertEqual(s["fills"], {"in_flight": 0, "started": 1,
                                      "coalesced": self.CLIENTS - 1, "failed": 0})
        self.assertEqual(s["bytes"]["fetched_upstream_blobs"], n)
        self.assertEqual(s["bytes"]["served_from_upstream"], self.CLIENTS * n)
        self.assertEqual(s["bytes"]["served_from_cache"], n)
        self.assertEqual(s["bytes"]["saved"], self.CLIENTS * n)
        self.assertEqual(len(self.fake.requests(method="GET", path_contains=digest, status=200)), 1)
        mt = parse_metrics(harness.request(self.m.url, "GET", "/metrics").body.decode())
        self.assertEqual(metric(mt, "hubcache_fills_coalesced_total"), self.CLIENTS - 1)
        self.assertEqual(metric(mt, "hubcache_fills_started_total"), 1)
        self.assertFalse(s["access_log"]["enabled"])

    def test_docker_hub_rate_limit_is_reported(self):
        self.fake.set_fault("limited", "status_429")
        r = harness.request(self.m.url, "GET", "/v2/stats/app/manifests/limited",
                            {"Accept": ACCEPT_ALL})
        self.assertEqual(r.status, 429, r)
        s = get_json(self.m, "/stats")
        rl = s["upstream"]["ratelimit"]
        self.assertEqual((rl["limit"], rl["remaining"]), (100, 0), rl)
        self.assertLessEqual(abs(rl["seen_at_ms"] - s["now_ms"]), 60_000)
        self.assertGreaterEqual(s["upstream"]["errors"], 1)
        mt = parse_metrics(harness.request(self.m.url, "GET", "/metrics").body.decode())
        self.assertEqual(metric(mt, "hubcache_upstream_ratelimit_limit"), 100)
        self.assertEqual(metric(mt, "hubcache_upstream_ratelimit_remaining"), 0)
        self.assertIn(("hubcache_upstream_ratelimit_remaining", ()), mt)
        r = harness.request(self.m.url, "GET", "/readyz")
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json()["upstream"]["reachable"], True, r)


if __name__ == "__main__":
    harness.require_tools("docker-registry", "skopeo", "openssl", "promtool")
    harness.run_module(__file__)
