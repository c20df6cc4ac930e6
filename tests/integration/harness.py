"""Small helpers shared by the real-upstream integration tests.

  Response / request()  one HTTP exchange on its own connection, exact headers, no redirects
  bearer_challenge()    parses a `WWW-Authenticate: Bearer ...` header
  skopeo()              runs skopeo hermetically (own policy, empty auth file, no registries.conf)
  compare_dirs()        file-by-file byte comparison of two directories
  module_workdir()      a fresh temp dir for one test module, removed at the end
  require_tools()       exit 77 when a tool the tests need is not installed
Every call has a timeout; nothing here leaves a process or thread behind.
"""
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

TEST_UA = "hubcache-tests/1"  # requests made by the tests themselves carry this User-Agent

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT_ALL = ", ".join([MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_LIST, MEDIA_DOCKER_V2])


class Response:
    def __init__(self, status, reason, headers, body, complete=True):
        self.status = status
        self.reason = reason
        self.headers = headers  # http.client.HTTPMessage: case-insensitive .get()
        self.body = body
        self.complete = complete  # False: the connection closed before the announced length

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body.decode())

    def error_codes(self):
        """The `code` of each entry in a registry error body, [] when it is not one."""
        try:
            return [e.get("code") for e in self.json().get("errors", [])]
        except (ValueError, AttributeError):
            return []

    def __repr__(self):
        cut = "" if self.complete else f" CUT SHORT after {len(self.body)} bytes"
        return (f"<Response {self.status} {self.reason} headers={dict(self.headers)} "
                f"body={self.body[:300]!r}{cut}>")


def request(base_url, method, path, headers=None, body=None, timeout=30):
    """Sends one request on a fresh connection; `path` goes on the wire exactly as given."""
    u = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        h = {"User-Agent": TEST_UA}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        try:
            return Response(r.status, r.reason, r.msg, r.read())
        except http.client.IncompleteRead as e:
            return Response(r.status, r.reason, r.msg, e.partial, complete=False)
    finally:
        conn.close()


def bearer_challenge(value):
    """'Bearer realm="..",service="..",scope=".."' -> dict, or None for another scheme."""
    if not value or not value.lower().startswith("bearer "):
        return None
    return dict(re.findall(r'(\w+)="([^"]*)"', value[7:]))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class SkopeoError(RuntimeError):
    pass


def skopeo_env(workdir):
    """Environment and global flags that keep skopeo away from host config and credentials."""
    d = os.path.join(workdir, "skopeo-config")
    os.makedirs(d, exist_ok=True)
    policy = os.path.join(d, "policy.json")
    auth = os.path.join(d, "auth.json")
    regconf = os.path.join(d, "registries.conf")
    if not os.path.exists(policy):
        with open(policy, "w") as f:
            json.dump({"default": [{"type": "insecureAcceptAnything"}]}, f)
        with open(auth, "w") as f:
            f.write("{}")
        with open(regconf, "w") as f:
            f.write("")
    env = dict(os.environ)
    env.update(REGISTRY_AUTH_FILE=auth, CONTAINERS_REGISTRIES_CONF=regconf,
               HOME=d, XDG_RUNTIME_DIR=d, DOCKER_CONFIG=d)
    return env, ["--policy", policy]


def skopeo(workdir, global_args, cmd_args, timeout=240):
    """Runs `skopeo GLOBAL... --policy P CMD...`; raises SkopeoError with its output on failure."""
    env, policy_args = skopeo_env(workdir)
    argv = ["skopeo", *global_args, *policy_args, *cmd_args]
    try:
        p = subprocess.run(argv, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise SkopeoError(f"timed out after {timeout}s: {' '.join(argv)}") from e
    if p.returncode != 0:
        raise SkopeoError(f"exit {p.returncode}: {' '.join(argv)}\n"
                          f"{p.stderr.decode(errors='replace')[-4000:]}")
    return p


def compare_dirs(a, b):
    """Lists the differences between two directory trees ([] when byte-identical)."""
    def listing(root):
        out = {}
        for dirpath, _, files in os.walk(root):
            for name in files:
                full = os.path.join(dirpath, name)
                out[os.path.relpath(full, root)] = full
        return out

    la, lb = listing(a), listing(b)
    diffs = [f"only in {a}: {n}" for n in sorted(set(la) - set(lb))]
    diffs += [f"only in {b}: {n}" for n in sorted(set(lb) - set(la))]
    for name in sorted(set(la) & set(lb)):
        if file_sha256(la[name]) != file_sha256(lb[name]):
            diffs.append(f"differs: {name} ({os.path.getsize(la[name])} vs "
                         f"{os.path.getsize(lb[name])} bytes)")
    return diffs


def module_workdir(prefix):
    """A fresh temp dir; kept when HUBCACHE_KEEP_TMP is set (for debugging)."""
    d = tempfile.mkdtemp(prefix=f"hubcache-{prefix}-")

    def cleanup():
        if os.environ.get("HUBCACHE_KEEP_TMP"):
            print(f"kept {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return d, cleanup


def require_tools(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        print(f"SKIP: missing tools: {', '.join(missing)}", file=sys.stderr)
        sys.exit(77)
