"""Test images, built as OCI image layouts without docker and pushed to an Upstream with skopeo.

  library/multi:1    OCI image index: linux/amd64 (layers 1 MiB + 2 MiB), linux/arm64/v8 (3 MiB)
  library/docker2:1  one image pushed with `--format v2s2` (Docker schema2 media types), 2+1 MiB
  library/big100:1   one image with a single 100 MiB incompressible layer
  library/lru1..8:1  eight images of two distinct layers each (7 MiB + 3 MiB), for eviction
  library/many12:1   one image of twelve 256 KiB layers (prefetch)
  library/sharea:1, library/shareb:1
                     two images whose first layer (2 MiB) is the same blob; the second
                     layers (1 MiB, 512 KiB) are their own

Layers are real tar+gzip archives holding one file. The file's bytes come from SHAKE-256
of a fixed seed (so every run and machine builds the same digests), and gzip runs at level 0
(stored blocks), so a layer is incompressible and about its nominal size. Configs carry the
right diff_ids.

Built layouts are cached under $HUBCACHE_FIXTURE_CACHE (default /tmp/hubcache-fixtures),
one directory per image, created atomically (build in a temp dir, then rename), under a
file lock so parallel test modules build each image once. Digests are never hard-coded:
describe() reads them back from the registry after the push (push_described(): both, for
several images).
"""
import errno
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time

import harness
from upstream import PUSH_PASSWORD, PUSH_USER

CACHE_FORMAT = "v1"  # bump when the way layouts are built changes
MiB = 1 << 20
REF_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_TAG = "1"

MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# name -> (platforms as (arch, variant, layers), top level is an index, skopeo --format).
# A layer is its size, or (shared name, size) for a layer that every image naming the same
# shared name holds byte for byte (same digest).
SPECS = {
    "multi": ([("amd64", None, [1 * MiB, 2 * MiB]), ("arm64", "v8", [3 * MiB])], True, None),
    "docker2": ([("amd64", None, [2 * MiB, 1 * MiB])], False, "v2s2"),
    "big100": ([("amd64", None, [100 * MiB])], False, None),
    "many12": ([("amd64", None, [256 * 1024] * 12)], False, None),
    "sharea": ([("amd64", None, [("base", 2 * MiB), 1 * MiB])], False, None),
    "shareb": ([("amd64", None, [("base", 2 * MiB), 512 * 1024])], False, None),
}
SPECS.update({f"lru{i}": ([("amd64", None, [7 * MiB, 3 * MiB])], False, None) for i in range(1, 9)})


def cache_root():
    base = os.environ.get("HUBCACHE_FIXTURE_CACHE") or "/tmp/hubcache-fixtures"
    return os.path.join(base, CACHE_FORMAT)


class _Stream:
    """A file-like reader of `size` bytes of SHAKE-256(seed, block index), 1 MiB per block."""

    def __init__(self, seed, size):
        self.seed, self.left, self.block = seed.encode(), size, 0
        self.buf, self.pos = b"", 0

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.left
        n = min(n, self.left)
        parts = []
        while n > 0:
            if self.pos == len(self.buf):
                self.buf = hashlib.shake_256(self.seed + b"/%d" % self.block).digest(MiB)
                self.block, self.pos = self.block + 1, 0
            take = min(n, len(self.buf) - self.pos)
            parts.append(self.buf[self.pos:self.pos + take])
            self.pos += take
            self.left -= take
            n -= take
        return b"".join(parts)


class _HashingWriter:
    """Forwards writes to `sink` while hashing and counting them."""

    def __init__(self, sink):
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.sink.write(data)

    def flush(self):
        pass

    def digest(self):
        return "sha256:" + self.sha.hexdigest()


class _Layout:
    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def _commit(self, tmp_path, digest):
        os.replace(tmp_path, os.path.join(self.blobs, digest.split(":", 1)[1]))

    def add_bytes(self, media_type, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        tmp = os.path.join(self.blobs, ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        self._commit(tmp, digest)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def add_json(self, media_type, obj):
        return self.add_bytes(media_type, json.dumps(obj, sort_keys=True,
                                                     separators=(",", ":")).encode())

    def add_layer(self, seed, file_name, size):
        """Writes a tar.gz holding one file; returns (descriptor, diff_id)."""
        tmp = os.path.join(self.blobs, ".tmp")
        with open(tmp, "wb") as f:
            compressed = _HashingWriter(f)
            gz = gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=0, mtime=0)
            uncompressed = _HashingWriter(gz)
            tar = tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.USTAR_FORMAT)
            info = tarfile.TarInfo(file_name)
            info.size, info.mode, info.mtime = size, 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, _Stream(seed, size))
            tar.close()
            gz.close()
        digest = compressed.digest()
        self._commit(tmp, digest)
        return ({"mediaType": MEDIA_OCI_LAYER, "digest": digest, "size": compressed.size},
                uncompressed.digest())

    def tag(self, descriptor, tag):
        entry = dict(descriptor, annotations={REF_ANNOTATION: tag})
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [entry]}, f)


def _build(name, root):
    platforms, is_index, _ = SPECS[name]
    layout = _Layout(root)
    manifests = []
    for arch, variant, sizes in platforms:
        plat = f"{arch}{variant or ''}"
        layers, diff_ids = [], []
        for i, layer in enumerate(sizes):
            if isinstance(layer, tuple):
                shared, size = layer
                seed = f"hubcache-fixture/shared/{shared}"
                file_name = f"hubcache/shared-{shared}.bin"
            else:
                size = layer
                seed = f"hubcache-fixture/{name}/{plat}/{i}"
                file_name = f"hubcache/{name}-{plat}-{i}.bin"
            desc, diff_id = layout.add_layer(seed, file_name, size)
            layers.append(desc)
            diff_ids.append(diff_id)
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        config = dict(platform, created="2024-01-01T00:00:00Z",
                      config={"Cmd": ["/bin/true"], "Env": [f"HUBCACHE_FIXTURE={name}"]},
                      rootfs={"type": "layers", "diff_ids": diff_ids},
                      history=[{"created": "2024-01-01T00:00:00Z",
                                "created_by": f"hubcache fixture layer {i}"}
                               for i in range(len(sizes))])
        manifest = {"schemaVersion": 2, "mediaType": harness.MEDIA_OCI_MANIFEST,
                    "config": layout.add_json(MEDIA_OCI_CONFIG, config), "layers": layers}
        desc = layout.add_json(harness.MEDIA_OCI_MANIFEST, manifest)
        manifests.append(dict(desc, platform=platform))
    if is_index:
        top = layout.add_json(harness.MEDIA_OCI_INDEX, {
            "schemaVersion": 2, "mediaType": harness.MEDIA_OCI_INDEX, "manifests": manifests})
    else:
        top = {k: v for k, v in manifests[0].items() if k != "platform"}
    layout.tag(top, LAYOUT_TAG)


def _layout_ok(root):
    """True when every descriptor reachable from index.json has its blob at the right size."""
    try:
        with open(os.path.join(root, "index.json")) as f:
            todo = list(json.load(f)["manifests"])
        seen = 0
        while todo and seen < 1000:
            seen += 1
            d = todo.pop()
            path = os.path.join(root, "blobs", "sha256", d["digest"].split(":", 1)[1])
            if os.path.getsize(path) != d["size"]:
                return False
            if d["mediaType"] in (harness.MEDIA_OCI_INDEX, harness.MEDIA_OCI_MANIFEST):
                with open(path) as f:
                    m = json.load(f)
                todo += m.get("manifests", []) + m.get("layers", [])
                if "config" in m:
                    todo.append(m["config"])
        return not todo
    except (OSError, ValueError, KeyError):
        return False


def layout(name, timeout_s=300):
    """Path of the OCI layout for fixture `name`, building it once if it is not cached."""
    base = cache_root()
    os.makedirs(base, exist_ok=True)
    final = os.path.join(base, name)
    if _layout_ok(final):
        return final
    with open(os.path.join(base, f"{name}.lock"), "w") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"fixture {name}: lock held for {timeout_s}s")
                time.sleep(0.1)
        if _layout_ok(final):  # another process built it while we waited
            return final
        shutil.rmtree(final, ignore_errors=True)
        tmp = tempfile.mkdtemp(prefix=f".build-{name}-", dir=base)
        try:
            _build(name, os.path.join(tmp, "layout"))
            try:
                os.rename(os.path.join(tmp, "layout"), final)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def push(upstream, workdir, name, tags=(LAYOUT_TAG,), repo=None):
    """Pushes fixture `name` to upstream as REPO:TAG (default library/NAME) for each tag."""
    src = layout(name)
    fmt = SPECS[name][2]
    for tag in tags:
        args = ["copy", "--all", "--dest-tls-verify=false",
                "--dest-creds", f"{PUSH_USER}:{PUSH_PASSWORD}"]
        if fmt:
            args += ["--format", fmt]
        args += [f"oci:{src}:{LAYOUT_TAG}",
                 f"docker://{upstream.host}/{repo or 'library/' + name}:{tag}"]
        harness.skopeo(workdir, [], args)


class Image:
    """What the registry holds for library/NAME:TAG, read back after the push.

    digest/media_type/raw: the object the tag names (index or manifest);
    manifests: digest -> (media type, raw bytes), the top object and every child;
    children: [(platform dict, digest)] for an index, [] otherwise;
    blobs: digest -> size of every config and layer (all platforms);
    layers: the layer digests in manifest order (all platforms)."""

    def __init__(self, repo, tag):
        self.repo, self.tag = repo, tag
        self.digest = self.media_type = self.raw = None
        self.manifests, self.children, self.blobs, self.layers = {}, [], {}, []

    @property
    def size(self):
        return len(self.raw)


def describe(upstream, name, tag=LAYOUT_TAG, repo=None):
    repo = repo or f"library/{name}"
    img = Image(repo, tag)

    def get(ref):
        r = upstream.request("GET", f"/v2/{repo}/manifests/{ref}", {"Accept": harness.ACCEPT_ALL})
        if r.status != 200:
            raise RuntimeError(f"GET {repo}:{ref} from upstream: {r!r}")
        digest = r.header("Docker-Content-Digest")
        if digest != "sha256:" + harness.sha256_hex(r.body):
            raise RuntimeError(f"{repo}:{ref}: digest header {digest} does not match body")
        img.manifests[digest] = (r.header("Content-Type"), r.body)
        return digest, r.header("Content-Type"), r.body

    img.digest, img.media_type, img.raw = get(tag)
    top = json.loads(img.raw)
    children = top.get("manifests", []) if "manifests" in top else []
    bodies = []
    if children:
        for c in children:
            get(c["digest"])
            img.children.append((c.get("platform", {}), c["digest"]))
            bodies.append(json.loads(img.manifests[c["digest"]][1]))
    else:
        bodies.append(top)
    for m in bodies:
        img.blobs[m["config"]["digest"]] = m["config"]["size"]
        for layer in m["layers"]:
            img.blobs[layer["digest"]] = layer["size"]
            img.layers.append(layer["digest"])
    return img


def push_described(upstream, workdir, names):
    """Pushes each fixture of `names` as library/NAME:1 (push()); returns {name: describe()}."""
    images = {}
    for name in names:
        push(upstream, workdir, name)
        images[name] = describe(upstream, name)
    return images


def blob_path(name, digest):
    """The blob's bytes in the local fixture layout (configs and layers keep their digests
    through skopeo's v2s2 conversion; manifests do not)."""
    return os.path.join(layout(name), "blobs", "sha256", digest.split(":", 1)[1])
