#!/usr/bin/env python3
"""`hubcache import DIR`: a registry:2 filesystem store adopted as hosted repositories.

A real `docker-registry serve` (distribution 2.8, no auth, filesystem storage in the module's
temp dir) gets, by skopeo: library/docker2 (Docker schema2, tags `1` and `also`), team/multi
(an OCI index of two platforms, tags `1` and `2`), a/b/sharea (a three-component name) and
corrupt/shareb, whose own 512 KiB layer then gets a flipped byte in the store's files. Every
image is copied once from the registry (dir: layouts, the reference bytes); then it stops.

  Import.test_import_then_pull       import into a fresh root: the summary counts exactly the
                                     store's content less the corrupt blob, its manifest and
                                     tag (one stderr line each); blobs are hard links of the
                                     store's files; hubcache serving the root with --hosted
                                     gives skopeo byte-identical copies, tags/list and
                                     _catalog name them, the corrupt image is MANIFEST_UNKNOWN.
  Import.test_second_import_is_noop  a second run imports nothing (all counts 0, files and
                                     index rows unchanged) and warns about the repositories no
                                     --hosted pattern covers.
  Import.test_copy_across_filesystems  a root on /dev/shm (another filesystem): blobs are
                                     copies, each hashing to its name; pulls byte-identical.
  Import.test_refused_while_server_runs  one stderr line, exit 1, nothing written.
  Import.test_usage_errors           not a registry:2 store, no DIR, two DIRs, a bad --hosted
                                     pattern: one line each, exit 2, no root created.
"""
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from mirror import Mirror, run_cli  # noqa: E402
from upstream import Upstream  # noqa: E402

# (fixture, repository, tags)
IMAGES = [
    ("docker2", "library/docker2", ("1", "also")),
    ("multi", "team/multi", ("1", "2")),
    ("sharea", "a/b/sharea", ("1",)),
    ("shareb", "corrupt/shareb", ("1",)),
]
CORRUPT_REPO = "corrupt/shareb"
HOSTED = "library/docker2,team/*,a/b/*,corrupt/*"
NO_UPSTREAM = "http://127.0.0.1:9"  # hosted names never go upstream

_work = None
_store = None  # the registry:2 root directory
_src = {}  # repo -> {"manifests": {digest: bytes}, "blobs": {digest: size}, "tags": {tag: digest}}
_direct = {}  # (repo, tag) -> dir: copy from the registry
_corrupt_blob = None

_SUMMARY_RE = re.compile(
    r"^imported: repositories (\d+), tags (\d+), manifests (\d+), blobs (\d+), "
    r"bytes (\d+) \([^)]*\), skipped (\d+)$")


def describe(registry, repo, tags):
    """What the registry holds for `repo`: manifests by digest, blobs by digest, tags."""
    out = {"manifests": {}, "blobs": {}, "tags": {}}
    for tag in tags:
        digest, raw = registry.manifest(repo, tag)
        out["tags"][tag] = digest
        todo = [(digest, raw)]
        while todo:
            d, body = todo.pop()
            out["manifests"][d] = body
            m = json.loads(body)
            for child in m.get("manifests", []):
                todo.append(registry.manifest(repo, child["digest"]))
            for b in ([m["config"]] if "config" in m else []) + m.get("layers", []):
                out["blobs"][b["digest"]] = b["size"]
    return out


def setUpModule():
    global _work, _store, _corrupt_blob
    harness.require_tools("docker-registry", "skopeo")
    _work, cleanup = harness.module_workdir("import")
    unittest.addModuleCleanup(cleanup)
    _store = os.path.join(_work, "store")
    registry = Upstream(_work, auth="none", name="registry", storage=_store)
    unittest.addModuleCleanup(registry.stop)
    registry.start()
    for fixture, repo, tags in IMAGES:
        for tag in tags:
            fixtures.push(registry, _work, fixture, tags=[tag], repo=repo)
        _src[repo] = describe(registry, repo, tags)
        for tag in tags:
            dest = os.path.join(_work, f"direct-{repo.replace('/', '_')}-{tag}")
            harness.skopeo_copy(_work, registry.host, f"{repo}:{tag}", dest)
            _direct[(repo, tag)] = dest
    registry.stop()
    # The corrupt image's own layer (not the base layer it shares with a/b/sharea).
    shared = set().union(*(s["blobs"] for r, s in _src.items() if r != CORRUPT_REPO))
    own = [d for d in json.loads(next(iter(_src[CORRUPT_REPO]["manifests"].values())))["layers"]
           if d["digest"] not in shared]
    _corrupt_blob = own[-1]["digest"]
    path = store_data_path(_corrupt_blob)
    with open(path, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 1]))


def store_data_path(digest):
    hexd = digest.split(":", 1)[1]
    return os.path.join(_store, "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd,
                        "data")


def expected_counts():
    """The summary's counts for a first import of the whole store into an empty root."""
    good = {r: s for r, s in _src.items() if r != CORRUPT_REPO}
    blobs = {}
    for s in _src.values():
        blobs.update(s["blobs"])
    del blobs[_corrupt_blob]
    return {"repositories": len(_src),  # corrupt/shareb still gains its good blobs
            "tags": sum(len(s["tags"]) for s in good.values()),
            "manifests": sum(len(s["manifests"]) for s in good.values()),
            "blobs": len(blobs), "bytes": sum(blobs.values()),
            "skipped": 3}  # the blob, the manifest, the tag


def parse_summary(test, r):
    lines = r.stdout.splitlines()
    test.assertEqual(len(lines), 1, f"stdout: {r.stdout!r}")
    m = _SUMMARY_RE.match(lines[0])
    test.assertIsNotNone(m, f"unexpected summary {lines[0]!r}")
    keys = ("repositories", "tags", "manifests", "blobs", "bytes", "skipped")
    return dict(zip(keys, (int(g) for g in m.groups())))


def hosted_files(root):
    """{relative path: (inode, size, link count)} of ROOT/hosted/blobs and manifests."""
    out = {}
    for sub in ("blobs", "manifests"):
        for dirpath, _, files in os.walk(os.path.join(root, "hosted", sub)):
            for n in files:
                st = os.stat(os.path.join(dirpath, n))
                out[os.path.relpath(os.path.join(dirpath, n), root)] = (
                    st.st_ino, st.st_size, st.st_nlink)
    return out


def hosted_rows(root):
    """The hosted tables' rows, without times."""
    db = sqlite3.connect(f"file:{os.path.join(root, 'index.db')}?mode=ro", uri=True)
    try:
        return {
            "blobs": sorted(db.execute("SELECT digest, size FROM hosted_blobs")),
            "links": sorted(db.execute("SELECT repo, digest FROM hosted_repo_blobs")),
            "manifests": sorted(db.execute(
                "SELECT repo, digest, media_type, size FROM hosted_manifests")),
            "tags": sorted(db.execute("SELECT repo, tag, digest FROM hosted_tags")),
        }
    finally:
        db.close()


class Import(unittest.TestCase):
    def root(self, label, base=None):
        d = tempfile.mkdtemp(prefix=f"{label}-", dir=base or _work)
        if base:
            self.addCleanup(shutil.rmtree, d, True)
        return os.path.join(d, "root")

    def import_ok(self, root, *extra):
        r = run_cli("import", _store, "--root", root, *extra)
        self.assertEqual(r.returncode, 0, f"import: {r.stdout}{r.stderr}")
        return r

    def assert_skips(self, stderr):
        lines = [l for l in stderr.splitlines() if "skipped" in l]
        self.assertEqual(len(lines), 3, stderr)
        want = [f"skipped blob {_corrupt_blob} of {CORRUPT_REPO}: its bytes hash to sha256:",
                f"of {CORRUPT_REPO}: it references {_corrupt_blob}",
                f"skipped tag {CORRUPT_REPO}:1: its manifest"]
        for w in want:
            self.assertTrue(any(w in l for l in lines), f"no line with {w!r} in:\n{stderr}")
        for l in lines:
            self.assertTrue(l.startswith("hubcache import: skipped "), l)

    def serve(self, root, label):
        d = os.path.join(_work, f"mirror-{label}")
        os.makedirs(d, exist_ok=True)
        m = Mirror(d, NO_UPSTREAM, extra_args=("--hosted", HOSTED), root=root)
        self.addCleanup(m.stop)
        return m.start()

    def pull_all(self, mirror):
        for fixture, repo, tags in IMAGES:
            if repo == CORRUPT_REPO:
                continue
            for tag in tags:
                dest = os.path.join(mirror.workdir, f"pull-{repo.replace('/', '_')}-{tag}-"
                                                    f"{uuid.uuid4().hex[:8]}")
                harness.skopeo_copy(_work, f"127.0.0.1:{mirror.port}", f"{repo}:{tag}", dest)
                self.assertEqual(harness.compare_dirs(_direct[(repo, tag)], dest), [],
                                 f"{repo}:{tag} through hubcache differs from the source")

    def test_import_then_pull(self):
        root = self.root("pull")
        r = self.import_ok(root, "--hosted", HOSTED)
        self.assertEqual(parse_summary(self, r), expected_counts())
        self.assert_skips(r.stderr)
        self.assertNotIn("warning", r.stderr)
        # Same filesystem: every hosted blob is the store's file, hard-linked.
        for rel, (_, _, nlink) in hosted_files(root).items():
            if rel.startswith(os.path.join("hosted", "blobs")):
                self.assertGreaterEqual(nlink, 2, rel)
        self.assertEqual(harness.dir_entries(os.path.join(root, "hosted", "tmp")), [])

        m = self.serve(root, "pull")
        self.pull_all(m)
        for _, repo, tags in IMAGES:
            r = harness.request(m.url, "GET", f"/v2/{repo}/tags/list")
            if repo == CORRUPT_REPO:
                continue
            self.assertEqual(r.status, 200, r)
            self.assertEqual(sorted(r.json()["tags"]), sorted(tags))
            for digest, raw in _src[repo]["manifests"].items():
                got = harness.request(m.url, "GET", f"/v2/{repo}/manifests/{digest}",
                                      {"Accept": harness.ACCEPT_ALL})
                self.assertEqual((got.status, got.body), (200, raw), f"{repo}@{digest}")
        catalog = harness.request(m.url, "GET", "/v2/_catalog").json()["repositories"]
        for _, repo, _ in IMAGES:
            if repo != CORRUPT_REPO:
                self.assertIn(repo, catalog)
        r = harness.request(m.url, "GET", f"/v2/{CORRUPT_REPO}/manifests/1",
                            {"Accept": harness.ACCEPT_ALL})
        self.assertEqual((r.status, r.error_codes()), (404, ["MANIFEST_UNKNOWN"]), r)

    def test_second_import_is_noop(self):
        root = self.root("twice")
        self.import_ok(root, "--hosted", HOSTED)
        files, rows = hosted_files(root), hosted_rows(root)
        r = self.import_ok(root, "--hosted", "team/*")
        self.assertEqual(parse_summary(self, r), {"repositories": 0, "tags": 0, "manifests": 0,
                                                  "blobs": 0, "bytes": 0, "skipped": 3})
        self.assert_skips(r.stderr)
        self.assertEqual(hosted_files(root), files)
        self.assertEqual(hosted_rows(root), rows)
        warnings = [l for l in r.stderr.splitlines() if "warning" in l]
        self.assertEqual(len(warnings), 1, r.stderr)
        self.assertIn("a/b/sharea, library/docker2", warnings[0])
        self.assertNotIn("team/multi", warnings[0])

    def test_copy_across_filesystems(self):
        if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(_store).st_dev:
            self.skipTest("no second filesystem at /dev/shm")
        root = self.root("copy", base="/dev/shm")
        r = self.import_ok(root, "--hosted", HOSTED)
        self.assertEqual(parse_summary(self, r), expected_counts())
        blobs = 0
        for rel, (_, _, nlink) in hosted_files(root).items():
            self.assertEqual(nlink, 1, rel)
            self.assertEqual(harness.file_sha256(os.path.join(root, rel)),
                             "sha256:" + os.path.basename(rel))
            blobs += rel.startswith(os.path.join("hosted", "blobs"))
        self.assertEqual(blobs, expected_counts()["blobs"])
        self.pull_all(self.serve(root, "copy"))

    def test_refused_while_server_runs(self):
        root = self.root("busy")
        self.serve(root, "busy")
        before = hosted_rows(root)
        r = run_cli("import", _store, "--root", root)
        self.assertEqual(r.returncode, 1, f"{r.stdout}{r.stderr}")
        self.assertEqual(r.stdout, "")
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn("a server is running on", r.stderr)
        self.assertEqual(hosted_rows(root), before)
        self.assertEqual(hosted_files(root), {})

    def test_usage_errors(self):
        empty = tempfile.mkdtemp(prefix="empty-", dir=_work)
        root = self.root("usage")
        cases = [
            (("import", empty, "--root", root), "is not a registry:2 store"),
            (("import", "--root", root), "usage: hubcache import DIR"),
            (("import", _store, empty, "--root", root), "usage: hubcache import DIR"),
            (("import", _store, "--root", root, "--hosted", "Team/*"), "--hosted"),
            (("import", _store, "--root", root, "--hosted"), "--hosted needs a value"),
            (("import", _store, "--root", root, "--verify"), "unknown option"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                r = run_cli(*args)
                self.assertEqual(r.returncode, 2, f"{r.stdout}{r.stderr}")
                self.assertEqual(r.stdout, "")
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                self.assertIn(want, r.stderr)
                self.assertFalse(os.path.exists(root), "the root was created")


if __name__ == "__main__":
    harness.run_module(__file__)
