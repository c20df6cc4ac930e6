#!/usr/bin/env python3
"""Hosted repositories (issue 13) with real clients: skopeo and podman push into hubcache.

A real upstream (docker-registry + token server) holds library/sharea:1 for the mirror side.
The pushed images come from the fixture OCI layouts (fixtures.py); `ref-*` are local copies of
them made by skopeo without any registry (`dir:` layouts), so a push followed by a pull must
give back exactly those files. Pushes use `--preserve-digests` so that skopeo never swaps in a
differently compressed blob it remembers from another push (its blob-info cache is global
for root: /var/lib/containers/cache).

  OpenPush     `--hosted chatsuite/*,team/app,myapp`, no client auth, DELETE off: skopeo pushes
               a Docker schema2 image (chatsuite/docker2), an OCI image (team/app) and an OCI
               index with --all (chatsuite/multi/deep), each pulled back byte-identical and
               kept under ROOT/hosted, never under the mirror cache; `myapp` means
               library/myapp; tags/list and _catalog list them; podman (vfs storage under the
               temp dir) pushes an image it pulled from an OCI layout, skopeo and a fresh podman
               pull it back (manifest digest, config digest, every layer's diff_id); a push to
               a mirrored name (library/alpine, team/other, chatsuite) is 403 DENIED naming
               HUBCACHE_HOSTED; DELETE is 405 UNSUPPORTED.
  DeleteAndGc  DELETE on: library/sharea pulled through the mirror, chatsuite/api:latest pushed
               from the same layout (the same blobs, hosted) and chatsuite/keep:1 (shareb: one
               layer in common); DELETE of api by digest, then `hubcache gc` (server stopped):
               --dry-run names exactly api's own blobs and changes nothing, gc removes them from
               ROOT/hosted/blobs and keeps the shared layer; the mirror cache keeps every
               library/sharea blob (the same digests), which pulls again with no upstream blob
               GET, and chatsuite/keep still pulls; a DELETE of a mirrored name removes nothing.
  AuthPush     REGISTRY_AUTH=htpasswd, `--push-users ci`: ci pushes (skopeo, podman --creds);
               dev (a valid user) gets 403 DENIED on a write; no credentials gets 401 +
               `WWW-Authenticate: Basic realm=...`; dev and ci pull hosted and mirrored images.

HUBCACHE_TEST_HOSTED_AGAINST=distribution runs OpenPush's client flows against a plain
`docker-registry` instead (a check of the test itself; the hubcache-only tests skip, so the
module exits 77 then).
"""
import base64
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from mirror import Mirror, parse_gc, run_cli, wait_until  # noqa: E402
from upstream import Upstream  # noqa: E402

OPEN_PATTERNS = "chatsuite/*,team/app,myapp"
PUSH_USER, PUSH_PASSWORD = "ci", "ci-secret-pw"
OTHER_USER, OTHER_PASSWORD = "dev", "dev-secret-pw"
REFERENCE = os.environ.get("HUBCACHE_TEST_HOSTED_AGAINST") == "distribution"
MEDIA_DOCKER_V2 = harness.MEDIA_DOCKER_V2
HEX64 = re.compile(r"^[0-9a-f]{64}$")

_work = None
_up = None
_ref = {}  # fixture name -> local dir: copy (what a push and pull must give back)
_direct_sharea = None  # library/sharea:1 copied straight from the upstream


def setUpModule():
    global _work, _up, _direct_sharea
    _work, cleanup = harness.module_workdir("hosted")
    unittest.addModuleCleanup(cleanup)
    for name, args in (("docker2", ["--format", "v2s2"]), ("sharea", []), ("shareb", []),
                       ("multi", ["--all"]), ("lru1", []), ("big100", [])):
        _ref[name] = os.path.join(_work, f"ref-{name}")
        harness.skopeo(_work, [], ["copy", *args, f"oci:{fixtures.layout(name)}:1",
                                   f"dir:{_ref[name]}"])
    if REFERENCE:
        return
    _up = Upstream(_work)
    unittest.addModuleCleanup(_up.stop)
    _up.start()
    fixtures.push(_up, _work, "sharea")
    _direct_sharea = os.path.join(_work, "direct-sharea")
    harness.skopeo_copy(_work, _up.host, "library/sharea:1", _direct_sharea)


# -- clients --------------------------------------------------------------------------------


def creds_args(flag, creds):
    """`--dest-creds u:p` / `--src-creds u:p`, or the matching `--*-no-creds`."""
    if creds:
        return [f"--{flag}-creds", f"{creds[0]}:{creds[1]}"]
    return [f"--{flag}-no-creds"]


def skopeo_push(host, src, image, creds=None, all_platforms=False):
    """skopeo copy SRC docker://HOST/IMAGE with digests preserved; the pushed manifest's digest."""
    digest_file = os.path.join(_work, f"digest-{uuid.uuid4().hex}")
    args = ["copy", "--dest-tls-verify=false", "--preserve-digests", "--digestfile", digest_file,
            *creds_args("dest", creds)]
    if all_platforms:
        args.append("--all")
    harness.skopeo(_work, [], [*args, src, f"docker://{host}/{image}"], timeout=120)
    with open(digest_file) as f:
        return f.read().strip()


def skopeo_pull(host, image, creds=None):
    """skopeo copy --all docker://HOST/IMAGE into a fresh dir:; its path."""
    dest = os.path.join(_work, "pulls", f"{image.replace('/', '_')}-{uuid.uuid4().hex[:8]}")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    harness.skopeo(_work, [], ["copy", "--all", "--src-tls-verify=false",
                               *creds_args("src", creds), f"docker://{host}/{image}",
                               f"dir:{dest}"], timeout=120)
    return dest


def basic(creds):
    return {"Authorization": "Basic " + base64.b64encode(
        f"{creds[0]}:{creds[1]}".encode()).decode()}


def dir_blobs(path):
    """{digest: size} of the blob files (configs and layers) in a skopeo dir: layout."""
    return {"sha256:" + n: os.path.getsize(os.path.join(path, n))
            for n in os.listdir(path) if HEX64.match(n)}


def dir_manifests(path):
    """{digest: raw} of manifest.json and every <hex>.manifest.json in a dir: layout."""
    out = {}
    for n in os.listdir(path):
        if n == "manifest.json" or n.endswith(".manifest.json"):
            with open(os.path.join(path, n), "rb") as f:
                raw = f.read()
            out["sha256:" + harness.sha256_hex(raw)] = raw
    return out


def hosted_path(root, kind, digest):
    hexd = digest.split(":", 1)[1]
    return os.path.join(root, "hosted", "blobs" if kind == "blob" else "manifests", "sha256",
                        hexd[:2], hexd)


def hosted_blob_files(root):
    """{digest: sha256 of the file} under ROOT/hosted/blobs."""
    out = {}
    for dirpath, _, files in os.walk(os.path.join(root, "hosted", "blobs", "sha256")):
        for n in files:
            out["sha256:" + n] = harness.file_sha256(os.path.join(dirpath, n))
    return out


class Podman:
    """podman as root kept inside `workdir`: vfs storage, its own run/tmp dirs, no host
    registries.conf, an empty auth file and an accept-anything signature policy."""

    def __init__(self, workdir):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.policy = os.path.join(workdir, "policy.json")
        with open(self.policy, "w") as f:
            json.dump({"default": [{"type": "insecureAcceptAnything"}]}, f)
        storage, run = os.path.join(workdir, "storage"), os.path.join(workdir, "run")
        files = {"registries.conf": "", "auth.json": "{}",
                 "storage.conf": f"[storage]\ndriver = \"vfs\"\ngraphroot = \"{storage}\"\n"
                                 f"runroot = \"{run}\"\n",
                 "containers.conf": "[engine]\ncgroup_manager = \"cgroupfs\"\n"
                                    "events_logger = \"file\"\n"}
        for name, text in files.items():
            with open(os.path.join(workdir, name), "w") as f:
                f.write(text)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("CONTAINER", "REGISTRY_", "XDG_", "DOCKER_"))}
        home = os.path.join(workdir, "home")
        self.env.update(HOME=home, XDG_RUNTIME_DIR=os.path.join(workdir, "xdg-run"),
                        XDG_CONFIG_HOME=os.path.join(home, ".config"),
                        XDG_DATA_HOME=os.path.join(home, ".local", "share"),
                        CONTAINERS_REGISTRIES_CONF=os.path.join(workdir, "registries.conf"),
                        CONTAINERS_STORAGE_CONF=os.path.join(workdir, "storage.conf"),
                        CONTAINERS_CONF=os.path.join(workdir, "containers.conf"),
                        REGISTRY_AUTH_FILE=os.path.join(workdir, "auth.json"))
        for d in (home, self.env["XDG_RUNTIME_DIR"]):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self.globals = ["--root", storage, "--runroot", run,
                        "--tmpdir", os.path.join(workdir, "tmp"),
                        "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                        "--events-backend", "file"]

    def run(self, *args, timeout=120):
        argv = ["podman", *self.globals, *args]
        try:
            p = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"timed out after {timeout}s: {' '.join(argv)}") from e
        if p.returncode != 0:
            raise AssertionError(f"exit {p.returncode}: {' '.join(argv)}\n{p.stderr[-4000:]}")
        return p.stdout

    def load_layout(self, name):
        """Pulls fixture `name`'s OCI layout into storage; its image ID (config digest hex)."""
        out = self.run("pull", "--signature-policy", self.policy,
                       f"oci:{fixtures.layout(name)}:1")
        return out.strip().splitlines()[-1]

    def push(self, image_id, ref, creds=None):
        """Tags and pushes; the digest podman reports for the pushed manifest."""
        self.run("tag", image_id, ref)
        digest_file = os.path.join(self.dir, f"digest-{uuid.uuid4().hex}")
        args = ["push", "--signature-policy", self.policy, "--tls-verify=false",
                "--digestfile", digest_file]
        if creds:
            args += ["--creds", f"{creds[0]}:{creds[1]}"]
        self.run(*args, ref)
        with open(digest_file) as f:
            return f.read().strip()

    def pull(self, ref, creds=None):
        """Pulls ref; (image ID, manifest digest) as podman records them."""
        args = ["pull", "--signature-policy", self.policy, "--tls-verify=false"]
        if creds:
            args += ["--creds", f"{creds[0]}:{creds[1]}"]
        self.run(*args, ref)
        out = self.run("image", "inspect", "--format", "{{.Id}} {{.Digest}}", ref)
        image_id, digest = out.split()
        return image_id, digest


# -- the tests ------------------------------------------------------------------------------


class HostedTest(unittest.TestCase):
    server = None

    @classmethod
    def start_mirror(cls, label, args=(), env=None, root=None):
        d = os.path.join(_work, label)
        os.makedirs(d, exist_ok=True)
        m = Mirror(d, _up.url, extra_args=args, env=env, root=root)
        cls.addClassCleanup(m.stop)
        return m.start()

    @property
    def host(self):
        return f"127.0.0.1:{self.server.port}"

    def log_tail(self):
        return self.server.log()[-4000:]

    def req(self, method, path, headers=None, body=None, creds=None):
        h = dict(headers or {})
        if creds:
            h.update(basic(creds))
        return harness.request(self.server.url, method, path, h, body, timeout=30)

    def assertPulledSame(self, ref_dir, image, creds=None, expect_digest=None):
        """Pulls `image` with skopeo and compares it file by file with `ref_dir`."""
        try:
            got = skopeo_pull(self.host, image, creds)
        except harness.SkopeoError as e:
            self.fail(f"pull of {image} failed: {e}\nserver log tail:\n{self.log_tail()}")
        self.assertEqual(harness.compare_dirs(ref_dir, got), [],
                         f"{image} pulled back differs from what was pushed")
        if expect_digest:
            with open(os.path.join(got, "manifest.json"), "rb") as f:
                self.assertEqual("sha256:" + harness.sha256_hex(f.read()), expect_digest)
        return got

    def push(self, src, image, creds=None, all_platforms=False):
        try:
            return skopeo_push(self.host, src, image, creds, all_platforms)
        except harness.SkopeoError as e:
            self.fail(f"push of {image} failed: {e}\nserver log tail:\n{self.log_tail()}")

    def hubcache_only(self):
        if REFERENCE:
            self.skipTest("hubcache behaviour, not distribution's")

    def assertNoUpstreamWrites(self, since):
        """No POST/PUT/PATCH/DELETE reached the upstream after `since` (a mark)."""
        _up.sync_log()
        writes = [line for line in _up.requests(since=since, include_tests=True)
                  if line.method not in ("GET", "HEAD")]
        self.assertEqual(writes, [], "writes forwarded to the upstream")

    def assertDenied(self, r, status, code, what):
        self.assertEqual((r.status, r.error_codes()[:1]), (status, [code]), f"{what}: {r!r}")


class OpenPush(HostedTest):
    @classmethod
    def setUpClass(cls):
        if REFERENCE:
            cls.server = Upstream(_work, auth="none", name="plain-registry")
            cls.addClassCleanup(cls.server.stop)
            cls.server.start()
        else:
            cls.server = cls.start_mirror("open", ["--hosted", OPEN_PATTERNS])
        cls.pushed = {}  # image -> (ref dir, manifest digest)

    def push_and_compare(self, name, src, image, all_platforms=False):
        digest = self.push(src, image, all_platforms=all_platforms)
        with open(os.path.join(_ref[name], "manifest.json"), "rb") as f:
            raw = f.read()
        self.assertEqual(digest, "sha256:" + harness.sha256_hex(raw), "--digestfile")
        self.assertPulledSame(_ref[name], image, expect_digest=digest)
        r = self.req("GET", f"/v2/{image.replace(':', '/manifests/')}",
                     {"Accept": harness.ACCEPT_ALL})
        self.assertEqual((r.status, r.header("Docker-Content-Digest"),
                          r.header("Content-Type"), r.body),
                         (200, digest, json.loads(raw)["mediaType"], raw), r)
        type(self).pushed[image] = (_ref[name], digest)
        if not REFERENCE:
            self.assertStoredHosted(_ref[name])

    def assertStoredHosted(self, ref_dir):
        """Every blob and manifest of ref_dir is a file under ROOT/hosted with the right bytes,
        and none is in the mirror cache."""
        root = self.server.root
        cached = harness.cache_objects(root)
        for kind, objects in (("blob", dir_blobs(ref_dir)), ("manifest", dir_manifests(ref_dir))):
            for digest in objects:
                with self.subTest(kind=kind, digest=digest[:19]):
                    path = hosted_path(root, kind, digest)
                    self.assertTrue(os.path.isfile(path), f"{path} missing")
                    self.assertEqual(harness.file_sha256(path), digest)
                    self.assertNotIn((kind, digest), cached, "hosted content in the mirror cache")

    def test_1_skopeo_docker_schema2(self):
        self.push_and_compare("docker2", f"dir:{_ref['docker2']}", "chatsuite/docker2:1")
        with open(os.path.join(_ref["docker2"], "manifest.json")) as f:
            self.assertEqual(json.load(f)["mediaType"], MEDIA_DOCKER_V2)

    def test_2_skopeo_oci_image_exact_pattern(self):
        self.push_and_compare("sharea", f"oci:{fixtures.layout('sharea')}:1", "team/app:1")

    def test_3_skopeo_oci_index_all(self):
        self.push_and_compare("multi", f"oci:{fixtures.layout('multi')}:1",
                              "chatsuite/multi/deep:1", all_platforms=True)
        top = harness.file_sha256(os.path.join(_ref["multi"], "manifest.json"))
        children = set(dir_manifests(_ref["multi"])) - {top}
        self.assertEqual(len(children), 2)
        for d in children:
            r = self.req("HEAD", f"/v2/chatsuite/multi/deep/manifests/{d}",
                         {"Accept": harness.ACCEPT_ALL})
            self.assertEqual((r.status, r.header("Docker-Content-Digest")), (200, d), r)

    def test_3b_narrow_accept_never_gets_the_oci_index(self):
        # A client that does not accept OCI indexes never gets one (as on the mirror side,
        # test_api_behaviour; distribution answers 404 MANIFEST_UNKNOWN).
        _, digest = type(self).pushed.get("chatsuite/multi/deep:1", (None, None))
        self.assertIsNotNone(digest, "test_3 did not push chatsuite/multi/deep:1")
        for accept in (MEDIA_DOCKER_V2, harness.MEDIA_OCI_MANIFEST,
                       f"{harness.MEDIA_DOCKER_LIST}, {MEDIA_DOCKER_V2}"):
            for method in ("GET", "HEAD"):
                with self.subTest(accept=accept, method=method):
                    r = self.req(method, "/v2/chatsuite/multi/deep/manifests/1", {"Accept": accept})
                    self.assertNotEqual(r.header("Content-Type"), harness.MEDIA_OCI_INDEX, r)
                    if r.status == 200:
                        self.assertIn(r.header("Content-Type"), accept.split(", "), r)
                    else:
                        self.assertEqual(r.status, 404, r)

    def test_4_short_name_pattern_means_library(self):
        self.hubcache_only()
        digest = self.push(f"oci:{fixtures.layout('shareb')}:1", "myapp:1")
        self.assertPulledSame(_ref["shareb"], "library/myapp:1", expect_digest=digest)
        self.assertPulledSame(_ref["shareb"], "myapp:1", expect_digest=digest)

    def test_4b_100_mib_layer_streams(self):
        self.push_and_compare("big100", f"oci:{fixtures.layout('big100')}:1", "chatsuite/big:1")
        # Under ASan (scripts/sanitize.sh) RSS is the sanitizer's shadow memory, not ours:
        # the bound is checked in the plain run, as test_memory.py and test_push_faults.py do.
        sanitized = "ASAN_OPTIONS" in os.environ or "UBSAN_OPTIONS" in os.environ
        if not REFERENCE and not sanitized:
            self.assertLess(self.server.peak_rss_kib(), 64 * 1024,
                            "hubcache's peak RSS after pushing and pulling a 100 MiB layer")

    def test_5_tags_and_catalog_list_hosted(self):
        self.hubcache_only()
        for repo in ("chatsuite/docker2", "team/app", "chatsuite/multi/deep"):
            r = self.req("GET", f"/v2/{repo}/tags/list")
            self.assertEqual((r.status, r.json() if r.status == 200 else None),
                             (200, {"name": repo, "tags": ["1"]}), r)
        r = self.req("GET", "/v2/_catalog")
        self.assertEqual(r.status, 200, r)
        repos = r.json().get("repositories", [])
        for repo in ("chatsuite/docker2", "team/app", "chatsuite/multi/deep", "library/myapp"):
            self.assertIn(repo, repos)

    def test_6_podman_push_and_pull_back(self):
        podman = Podman(os.path.join(_work, "podman-open"))
        image_id = podman.load_layout("lru1")
        with open(os.path.join(_ref["lru1"], "manifest.json")) as f:
            config_digest = json.load(f)["config"]["digest"]
        self.assertEqual("sha256:" + image_id, config_digest)
        ref = f"{self.host}/chatsuite/podman:1"
        try:
            digest = podman.push(image_id, ref)
        except AssertionError as e:
            self.fail(f"{e}\nserver log tail:\n{self.log_tail()}")
        got = skopeo_pull(self.host, "chatsuite/podman:1")
        self.assertPodmanImage(got, digest, config_digest)
        fresh = Podman(os.path.join(_work, "podman-open-2"))
        self.assertEqual(fresh.pull(ref), (image_id, digest))

    def assertPodmanImage(self, got, digest, config_digest):
        """podman recompresses layers, so compare what they hold: the manifest is the one it
        pushed, the config is the layout's, each layer unpacks to the config's diff_id."""
        with open(os.path.join(got, "manifest.json"), "rb") as f:
            raw = f.read()
        self.assertEqual("sha256:" + harness.sha256_hex(raw), digest)
        manifest = json.loads(raw)
        self.assertEqual(manifest["config"]["digest"], config_digest)
        with open(os.path.join(got, config_digest.split(":")[1]), "rb") as f:
            diff_ids = json.load(f)["rootfs"]["diff_ids"]
        self.assertEqual(len(manifest["layers"]), len(diff_ids))
        for layer, diff_id in zip(manifest["layers"], diff_ids):
            path = os.path.join(got, layer["digest"].split(":")[1])
            self.assertEqual(harness.file_sha256(path), layer["digest"])
            sha = hashlib.sha256()
            with gzip.open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    sha.update(chunk)
            self.assertEqual("sha256:" + sha.hexdigest(), diff_id)

    def test_7_push_to_mirrored_name_denied(self):
        self.hubcache_only()
        mark = _up.mark()
        src = f"oci:{fixtures.layout('sharea')}:1"
        for image in ("library/alpine:1", "alpine:1", "team/other:1", "chatsuite:1"):
            with self.subTest(image=image):
                with self.assertRaises(harness.SkopeoError) as cm:
                    skopeo_push(self.host, src, image)
                self.assertIn("denied", str(cm.exception).lower())
                repo = image.split(":")[0]
                r = self.req("POST", f"/v2/{repo}/blobs/uploads/")
                self.assertDenied(r, 403, "DENIED", f"POST upload to {repo}")
                self.assertIn("HUBCACHE_HOSTED", r.json()["errors"][0].get("message", ""), r)
                with open(os.path.join(_ref["sharea"], "manifest.json"), "rb") as f:
                    raw = f.read()
                r = self.req("PUT", f"/v2/{repo}/manifests/1",
                             {"Content-Type": harness.MEDIA_OCI_MANIFEST}, raw)
                self.assertDenied(r, 403, "DENIED", f"PUT manifest to {repo}")
        self.assertNoUpstreamWrites(mark)

    def test_8_delete_without_delete_enabled_is_405(self):
        ref_dir, digest = type(self).pushed.get("chatsuite/docker2:1", (None, None))
        self.assertIsNotNone(digest, "test_1 did not push chatsuite/docker2:1")
        blob = next(iter(dir_blobs(ref_dir)))
        for path in (f"/v2/chatsuite/docker2/manifests/{digest}",
                     "/v2/chatsuite/docker2/manifests/1",
                     f"/v2/chatsuite/docker2/blobs/{blob}"):
            with self.subTest(path=path):
                self.assertDenied(self.req("DELETE", path), 405, "UNSUPPORTED", f"DELETE {path}")
        self.assertPulledSame(ref_dir, "chatsuite/docker2:1", expect_digest=digest)

    def test_9_stats_count_hosted(self):
        self.hubcache_only()
        blobs = {}
        for dirpath, _, files in os.walk(os.path.join(self.server.root, "hosted", "blobs")):
            for n in files:
                blobs[n] = os.path.getsize(os.path.join(dirpath, n))
        r = self.req("GET", "/stats")
        self.assertEqual(r.status, 200, r)
        hosted = r.json().get("hosted")
        self.assertIsInstance(hosted, dict, r)
        # chatsuite/docker2, team/app, chatsuite/multi/deep (index + 2), library/myapp,
        # chatsuite/big, chatsuite/podman: one tag each.
        self.assertEqual({k: hosted.get(k) for k in ("repositories", "manifests", "tags", "blobs",
                                                     "uploads_in_progress")},
                         dict(repositories=6, manifests=8, tags=6, blobs=len(blobs),
                              uploads_in_progress=0), hosted)
        self.assertGreaterEqual(hosted.get("bytes", 0), sum(blobs.values()), hosted)
        metrics = self.req("GET", "/metrics").body.decode()
        self.assertRegex(metrics, rf"(?m)^hubcache_hosted_blobs {len(blobs)}$")


class DeleteAndGc(HostedTest):
    @classmethod
    def setUpClass(cls):
        if REFERENCE:
            raise unittest.SkipTest("hubcache only")
        cls.server = cls.start_mirror("gc", ["--hosted", "chatsuite/*"],
                                      {"REGISTRY_STORAGE_DELETE_ENABLED": "true"})

    def test_delete_then_gc(self):
        root = self.server.root
        sharea_blobs = dir_blobs(_ref["sharea"])
        shareb_blobs = dir_blobs(_ref["shareb"])
        shared = set(sharea_blobs) & set(shareb_blobs)
        api_only = set(sharea_blobs) - shared
        self.assertEqual((len(shared), len(api_only)), (1, 2))

        # The mirror side: library/sharea cached, the very blobs chatsuite/api will hold.
        self.assertPulledSame(_direct_sharea, "library/sharea:1")
        wait_until(lambda: all(("blob", d) in harness.cache_objects(root) for d in sharea_blobs),
                   15, "library/sharea's blobs in the mirror cache")
        cached_before = harness.cache_objects(root)

        # skopeo mounts chatsuite/api's blobs from library/sharea (its blob-info cache saw
        # them there): hosted copies of cached blobs.
        api = self.push(f"oci:{fixtures.layout('sharea')}:1", "chatsuite/api:latest")
        keep = self.push(f"oci:{fixtures.layout('shareb')}:1", "chatsuite/keep:1")
        self.assertEqual(self.push(f"oci:{fixtures.layout('shareb')}:1", "chatsuite/keep:2"),
                         keep)
        self.assertPulledSame(_ref["sharea"], "chatsuite/api:latest", expect_digest=api)
        hosted = hosted_blob_files(root)
        for d in set(sharea_blobs) | set(shareb_blobs):
            self.assertEqual(hosted.get(d), d, f"hosted blob {d} after the pushes")

        r = self.req("DELETE", f"/v2/chatsuite/api/manifests/{api}")
        self.assertEqual(r.status, 202, r)
        for ref in ("latest", api):
            r = self.req("GET", f"/v2/chatsuite/api/manifests/{ref}",
                         {"Accept": harness.ACCEPT_ALL})
            self.assertDenied(r, 404, "MANIFEST_UNKNOWN", f"GET chatsuite/api:{ref} after DELETE")
        with self.assertRaises(harness.SkopeoError):
            skopeo_pull(self.host, "chatsuite/api:latest")

        # DELETE of a tag removes the tag only.
        r = self.req("DELETE", "/v2/chatsuite/keep/manifests/2")
        self.assertEqual(r.status, 202, r)
        r = self.req("GET", "/v2/chatsuite/keep/manifests/2", {"Accept": harness.ACCEPT_ALL})
        self.assertDenied(r, 404, "MANIFEST_UNKNOWN", "GET chatsuite/keep:2 after its DELETE")
        r = self.req("GET", f"/v2/chatsuite/keep/manifests/{keep}", {"Accept": harness.ACCEPT_ALL})
        self.assertEqual((r.status, r.header("Docker-Content-Digest")), (200, keep), r)
        r = self.req("GET", "/v2/chatsuite/keep/tags/list")
        self.assertEqual((r.status, r.body and r.json().get("tags")), (200, ["1"]), r)

        # A blob no manifest references, uploaded then deleted: gc sweeps it too.
        lone = b"a blob no manifest ever names\n" * 100
        lone_digest = "sha256:" + harness.sha256_hex(lone)
        r = self.req("POST", f"/v2/chatsuite/lone/blobs/uploads/?digest={lone_digest}",
                     {"Content-Type": "application/octet-stream"}, lone)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(hosted_blob_files(root).get(lone_digest), lone_digest)
        r = self.req("DELETE", f"/v2/chatsuite/lone/blobs/{lone_digest}")
        self.assertEqual(r.status, 202, r)
        r = self.req("HEAD", f"/v2/chatsuite/lone/blobs/{lone_digest}")
        self.assertEqual(r.status, 404, r)
        swept = api_only | {lone_digest}

        # A DELETE of a mirrored name must not touch the cache.
        mark = _up.mark()
        mirrored_layer = sorted(shared)[0]
        r = self.req("DELETE", f"/v2/library/sharea/blobs/{mirrored_layer}")
        self.assertDenied(r, 403, "DENIED", "DELETE of a mirrored blob")
        self.assertEqual(harness.cache_objects(root), cached_before)
        self.assertNoUpstreamWrites(mark)

        self.assertEqual(self.server.stop(), 0, "SIGTERM did not exit 0")
        snapshot = {**hosted_blob_files(root), **{f"{k}:{d}": s for (k, d), s in
                                                  harness.cache_objects(root).items()}}
        r = run_cli("gc", "--root", root, "--dry-run")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotRegex(r.stdout, r"(?m)^would remove sha256:",
                            "blobs younger than the default --grace (1h) are kept")
        r = run_cli("gc", "--root", root, "--dry-run", "--grace", "0s")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        would = set(re.findall(r"^would remove (sha256:[0-9a-f]{64}) \(", r.stdout, re.M))
        self.assertEqual(would, swept, r.stdout)
        self.assertRegex(r.stdout, r"(?m)^hosted: ")
        self.assertEqual({**hosted_blob_files(root), **{f"{k}:{d}": s for (k, d), s in
                                                        harness.cache_objects(root).items()}},
                         snapshot, "gc --dry-run changed files")

        r = run_cli("gc", "--root", root, "--grace", "0s")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^hosted: freed .* \(3 blobs, 0 untagged manifests\)",
                         r.stdout)
        report = parse_gc(r.stdout)
        self.assertEqual({k: report[k] for k in ("temp", "orphans_removed", "corrupt", "rows",
                                                  "adopted")},
                         dict(temp=0, orphans_removed=0, corrupt=0, rows=0, adopted=0),
                         f"the mirror cache needed no repair:\n{r.stdout}")
        hosted = hosted_blob_files(root)
        self.assertEqual(set(hosted), set(shareb_blobs),
                         f"ROOT/hosted/blobs after gc (api's own blobs gone, keep's kept):\n"
                         f"{r.stdout}")
        self.assertFalse(os.path.exists(hosted_path(root, "manifest", api)),
                         "chatsuite/api's manifest file is still there after gc")
        self.assertEqual(harness.cache_objects(root), cached_before, "gc changed the mirror cache")

        # Restarted on the same root: the mirror still serves library/sharea from its cache.
        self.server = self.start_mirror("gc", ["--hosted", "chatsuite/*"],
                                        {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}, root=root)
        _up.sync_log()
        mark = _up.mark()
        self.assertPulledSame(_direct_sharea, "library/sharea:1")
        _up.sync_log()
        self.assertEqual(_up.requests("GET", r"/v2/.*/blobs/.*", since=mark), [],
                         "library/sharea's blobs are cached: no upstream blob GET")
        self.assertPulledSame(_ref["shareb"], "chatsuite/keep:1", expect_digest=keep)
        r = self.req("GET", "/v2/chatsuite/api/manifests/latest", {"Accept": harness.ACCEPT_ALL})
        self.assertEqual(r.status, 404, r)


class AuthPush(HostedTest):
    @classmethod
    def setUpClass(cls):
        htpasswd = os.path.join(_work, "htpasswd")
        with open(htpasswd, "w") as f:
            for user, password in ((PUSH_USER, PUSH_PASSWORD), (OTHER_USER, OTHER_PASSWORD)):
                p = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True,
                                   text=True, check=True, timeout=30)
                f.write(p.stdout.strip() + "\n")
        if REFERENCE:  # every htpasswd user may push there
            cls.server = Upstream(_work, auth="basic", name="plain-auth", htpasswd=htpasswd)
            cls.addClassCleanup(cls.server.stop)
            cls.server.start()
        else:
            cls.server = cls.start_mirror("auth", ["--hosted", "chatsuite/*",
                                                   "--push-users", PUSH_USER],
                                          {"REGISTRY_AUTH": "htpasswd",
                                           "REGISTRY_AUTH_HTPASSWD_PATH": htpasswd,
                                           "REGISTRY_AUTH_HTPASSWD_REALM": "hubcache-test"})
        cls.ci, cls.dev = (PUSH_USER, PUSH_PASSWORD), (OTHER_USER, OTHER_PASSWORD)

    def test_push_user_pushes_every_user_pulls(self):
        digest = self.push(f"oci:{fixtures.layout('sharea')}:1", "chatsuite/authed:1",
                           creds=self.ci)
        for creds in (self.dev, self.ci):
            with self.subTest(user=creds[0]):
                self.assertPulledSame(_ref["sharea"], "chatsuite/authed:1", creds, digest)
                if not REFERENCE:
                    self.assertPulledSame(_direct_sharea, "library/sharea:1", creds)
        r = self.req("GET", "/v2/chatsuite/authed/manifests/1", {"Accept": harness.ACCEPT_ALL})
        self.assertEqual(r.status, 401, r)

    def test_podman_push_with_creds(self):
        podman = Podman(os.path.join(_work, "podman-auth"))
        image_id = podman.load_layout("shareb")
        ref = f"{self.host}/chatsuite/podman-ci:1"
        try:
            digest = podman.push(image_id, ref, creds=self.ci)
        except AssertionError as e:
            self.fail(f"{e}\nserver log tail:\n{self.log_tail()}")
        fresh = Podman(os.path.join(_work, "podman-auth-2"))
        self.assertEqual(fresh.pull(ref, creds=self.dev), (image_id, digest))
        if REFERENCE:
            return
        with self.assertRaises(AssertionError):
            podman.push(image_id, f"{self.host}/chatsuite/podman-dev:1", creds=self.dev)

    def test_other_user_gets_403_denied(self):
        self.hubcache_only()
        with self.assertRaises(harness.SkopeoError) as cm:
            skopeo_push(self.host, f"oci:{fixtures.layout('docker2')}:1", "chatsuite/dev:1",
                        creds=self.dev)
        self.assertIn("denied", str(cm.exception).lower())
        r = self.req("POST", "/v2/chatsuite/dev/blobs/uploads/", creds=self.dev)
        self.assertDenied(r, 403, "DENIED", "POST upload as a user not in --push-users")
        with open(os.path.join(_ref["docker2"], "manifest.json"), "rb") as f:
            raw = f.read()
        r = self.req("PUT", "/v2/chatsuite/dev/manifests/1", {"Content-Type": MEDIA_DOCKER_V2},
                     raw, creds=self.dev)
        self.assertDenied(r, 403, "DENIED", "PUT manifest as a user not in --push-users")

    def test_no_credentials_gets_401_basic(self):
        with self.assertRaises(harness.SkopeoError):
            skopeo_push(self.host, f"oci:{fixtures.layout('docker2')}:1", "chatsuite/anon:1")
        for method, path in (("POST", "/v2/chatsuite/anon/blobs/uploads/"),
                             ("PUT", "/v2/chatsuite/anon/manifests/1")):
            with self.subTest(method=method):
                r = self.req(method, path, {"Content-Type": MEDIA_DOCKER_V2}, b"{}")
                self.assertEqual(r.status, 401, r)
                self.assertRegex(r.header("WWW-Authenticate") or "", r'^Basic realm="[^"]+"', r)
        r = self.req("POST", "/v2/chatsuite/anon/blobs/uploads/",
                     creds=(PUSH_USER, "wrong-password"))
        self.assertEqual(r.status, 401, r)


if __name__ == "__main__":
    harness.require_tools("docker-registry", "skopeo", "openssl", "htpasswd", "podman")
    harness.run_module(__file__)
