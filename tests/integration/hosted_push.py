"""Pushes small images into a hosted repository of a running mirror with raw HTTP, as a
registry client would (OCI distribution spec v1.1): no skopeo, every request visible.

  upload_blob()   one blob: monolithic (POST ?digest= with the body), or a session
                  (POST, PATCH chunks, PUT ?digest=)
  make_image()    config + layers + an OCI image manifest, deterministic bytes
  push_image()    uploads an image's blobs, then PUTs its manifest by tag

Every call checks the status and raises AssertionError with the response otherwise.
"""
import hashlib
import json

import harness

MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _expect(r, status, what):
    if r.status != status:
        raise AssertionError(f"{what}: want {status}, got {r!r}")
    return r


def _with_digest(location, digest):
    return location + ("&" if "?" in location else "?") + "digest=" + digest


def upload_blob(url, repo, data, chunks=None, headers=None):
    """Uploads `data` to `repo`; `chunks` (sizes) makes it a session of PATCHes, else it is
    one monolithic POST. Returns the digest."""
    h = dict(headers or {})
    digest = sha256(data)
    base = f"/v2/{repo}/blobs/uploads/"
    if chunks is None:
        _expect(harness.request(url, "POST", base + "?digest=" + digest,
                                dict(h, **{"Content-Type": "application/octet-stream"}), data),
                201, f"monolithic upload to {repo}")
        return digest
    r = _expect(harness.request(url, "POST", base, dict(h, **{"Content-Length": "0"}), b""), 202,
                f"upload start in {repo}")
    location = r.header("Location")
    offset = 0
    for size in chunks:
        chunk = data[offset:offset + size]
        r = _expect(harness.request(url, "PATCH", location, dict(h, **{
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}), chunk), 202,
            f"PATCH of {len(chunk)} bytes at {offset}")
        location = r.header("Location")
        offset += len(chunk)
    _expect(harness.request(url, "PUT", _with_digest(location, digest), dict(h, **{
        "Content-Type": "application/octet-stream"}), data[offset:]), 201, "upload PUT")
    return digest


def make_image(name, layers):
    """An OCI image of `layers` (bytes each): {"config", "layers", "manifest" (bytes),
    "digest", "blobs" {digest: bytes}}."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "name": name,
                         "rootfs": {"type": "layers",
                                    "diff_ids": [sha256(x) for x in layers]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": harness.MEDIA_OCI_MANIFEST,
        "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": MEDIA_OCI_LAYER, "digest": sha256(x), "size": len(x)}
                   for x in layers],
    }, indent=2).encode()
    blobs = {sha256(config): config}
    blobs.update({sha256(x): x for x in layers})
    return {"config": config, "layers": layers, "manifest": manifest,
            "digest": sha256(manifest), "blobs": blobs}


def put_manifest(url, repo, reference, manifest, headers=None):
    r = _expect(harness.request(url, "PUT", f"/v2/{repo}/manifests/{reference}",
                                dict(headers or {}, **{"Content-Type": harness.MEDIA_OCI_MANIFEST}),
                                manifest), 201, f"manifest PUT {repo}:{reference}")
    return r.header("Docker-Content-Digest")


def push_image(url, repo, tag, image, chunked=(), headers=None):
    """Uploads the image's blobs (those whose digest is in `chunked` as sessions of two
    PATCHes, the rest monolithic), then PUTs the manifest as `tag`."""
    for digest, data in image["blobs"].items():
        if digest in chunked:
            half = len(data) // 2
            upload_blob(url, repo, data, chunks=(half, len(data) - half), headers=headers)
        else:
            upload_blob(url, repo, data, headers=headers)
    got = put_manifest(url, repo, tag, image["manifest"], headers)
    if got != image["digest"]:
        raise AssertionError(f"pushed manifest has digest {got}, want {image['digest']}")
    return got
