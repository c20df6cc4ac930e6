"""Small helpers shared by the real-upstream integration tests.

  Response / request()  one HTTP exchange on its own connection, exact headers, no redirects
  bearer_challenge()    parses a `WWW-Authenticate: Bearer ...` header
  skopeo()              runs skopeo hermetically (own policy, empty auth file, no registries.conf)
  skopeo_copy()         `skopeo copy [--all] docker://HOST/IMAGE dir:DEST` over plain HTTP
  copy_dest()           WORKDIR/copies/PHASE/LABEL, the dir: destination of one copy
  compare_dirs()        file-by-file byte comparison of two directories
  stream_get()          one GET on its own connection, the body hashed as it streams in
  cache_objects()       the objects in a hubcache root (blobs/ and manifests/), by digest
  read_text()           a log file's text, "" before it exists
  module_workdir()      a fresh temp dir for one test module, removed at the end
  cleaned_workdir()     module_workdir(), its removal handed to a cleanup hook
  ModuleState           a test module's shared state, filled in by its setUpModule
  require_tools()       exit 77 when a tool the tests need is not installed
  run_module()          unittest.main for a module, with cleanups even on SIGTERM/^C;
                        exit 77 when a test skipped (scripts/test.sh: a failure)
Every call has a timeout; nothing here leaves a process or thread behind.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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


def basic_auth(user, password):
    """The Authorization value of Basic credentials."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


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
    # skopeo reads registries.conf from its flag, not from CONTAINERS_REGISTRIES_CONF
    # (which podman and buildah honour): both, so no host file is ever read.
    return env, ["--policy", policy, "--registries-conf", regconf]


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


def skopeo_copy(workdir, host, image, dest, all_platforms=True, timeout=240, arch=None):
    """Copies docker://HOST/IMAGE (e.g. library/multi:1) into dir:DEST, anonymously over HTTP.
    With `arch`, the linux/ARCH platform alone (--override-os/--override-arch; all_platforms
    is then ignored)."""
    global_args = ["--override-os", "linux", "--override-arch", arch] if arch else []
    args = ["copy", "--src-tls-verify=false", "--src-no-creds"]
    if all_platforms and not arch:
        args.append("--all")
    args += [f"docker://{host}/{image}", f"dir:{dest}"]
    return skopeo(workdir, global_args, args, timeout=timeout)


def copy_dest(workdir, phase, label):
    """WORKDIR/copies/PHASE/LABEL, the dir: destination of one copy; its parent exists, as
    skopeo requires."""
    parent = os.path.join(workdir, "copies", phase)
    os.makedirs(parent, exist_ok=True)
    return os.path.join(parent, label)


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


def make_cert(directory, name):
    """A self-signed certificate for 127.0.0.1 (and its key), as PEM files."""
    cert, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", "2", "-keyout", key, "-out", cert, "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def write_htpasswd(path, *users, cost=None):
    """An htpasswd file of bcrypt entries (htpasswd -B) for (user, password) pairs."""
    lines = []
    for user, password in users:
        argv = ["htpasswd", "-Bbn"] + (["-C", str(cost)] if cost else []) + [user, password]
        lines.append(subprocess.run(argv, check=True, capture_output=True, text=True,
                                    timeout=60).stdout.strip())
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def module_workdir(prefix):
    """A fresh temp dir; kept when HUBCACHE_KEEP_TMP is set (for debugging)."""
    d = tempfile.mkdtemp(prefix=f"hubcache-{prefix}-")

    def cleanup():
        if os.environ.get("HUBCACHE_KEEP_TMP"):
            print(f"kept {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return d, cleanup


def cleaned_workdir(label, add_cleanup):
    """A fresh module_workdir(label), removed by `add_cleanup` (a class's addClassCleanup,
    or unittest.addModuleCleanup). Returns the directory."""
    d, cleanup = module_workdir(label)
    add_cleanup(cleanup)
    return d


class ModuleState:
    """A test module's shared state (work dir, servers, images): one instance, `S`, whose
    attributes the module's setUpModule sets."""


def require_tools(*tools):
    """Exit 77 (skip) when a tool is missing. scripts/test.sh counts that as a failure:
    scripts/install-deps.sh installs every one of them."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        print(f"SKIP: missing tools: {', '.join(missing)} (scripts/install-deps.sh all)",
              file=sys.stderr)
        sys.exit(77)


class StreamResult:
    """What stream_get() received. `complete`: the body ended cleanly at its Content-Length."""

    def __init__(self, status, headers, size, digest, error):
        self.status = status
        self.headers = headers  # lower-case keys
        self.size = size
        self.digest = digest
        self.error = error  # the exception that ended the body early, or None
        cl = headers.get("content-length")
        self.content_length = int(cl) if cl is not None else None

    @property
    def complete(self):
        return self.error is None and (self.content_length is None
                                       or self.size == self.content_length)

    def __repr__(self):
        return (f"<StreamResult {self.status} size={self.size} content-length="
                f"{self.content_length} digest={self.digest} error={self.error!r} "
                f"headers={self.headers}>")


def stream_get(base_url, path, headers=None, timeout=30, deadline_s=120, on_chunk=None):
    """GETs `path` on a fresh connection and hashes the body in 1 MiB reads.

    timeout bounds one socket operation, deadline_s the whole body; on_chunk(received) is
    called after every read. A connection that fails before the status line raises."""
    u = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    t0 = time.monotonic()
    try:
        h = {"User-Agent": TEST_UA}
        h.update(headers or {})
        conn.request("GET", path, headers=h)
        r = conn.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        sha, n, error = hashlib.sha256(), 0, None
        try:
            while True:
                if time.monotonic() - t0 > deadline_s:
                    raise TimeoutError(f"body not finished after {deadline_s}s ({n} bytes)")
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                sha.update(chunk)
                n += len(chunk)
                if on_chunk:
                    on_chunk(n)
        except http.client.IncompleteRead as e:
            sha.update(e.partial)
            n += len(e.partial)
            error = e
        except (OSError, http.client.HTTPException) as e:
            error = e
        return StreamResult(r.status, hdrs, n, "sha256:" + sha.hexdigest(), error)
    finally:
        conn.close()


def cache_object_path(root, kind, digest):
    """ROOT/blobs/sha256/<2>/<64 hex> (kind "blob") or ROOT/manifests/... (kind "manifest")."""
    hexd = digest.split(":", 1)[1]
    return os.path.join(root, "blobs" if kind == "blob" else "manifests", "sha256", hexd[:2], hexd)


def cache_objects(root):
    """{(kind, "sha256:<hex>"): size} for every file under ROOT/blobs and ROOT/manifests
    (kind "blob" or "manifest"). Files that vanish while listed are left out."""
    out = {}
    for kind, sub in (("blob", "blobs"), ("manifest", "manifests")):
        top = os.path.join(root, sub, "sha256")
        for dirpath, _, files in os.walk(top):
            for name in files:
                try:
                    out[(kind, "sha256:" + name)] = os.path.getsize(os.path.join(dirpath, name))
                except OSError:
                    pass
    return out


def cache_bytes(root):
    """Bytes in ROOT/blobs and ROOT/manifests (what a cache size cap counts)."""
    return sum(cache_objects(root).values())


def read_text(path):
    """The whole file as text (undecodable bytes replaced); "" when it cannot be read
    (a log not written yet)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def dir_entries(path):
    """Names in `path` ([] when it does not exist)."""
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def run_module(path, last_resort=()):
    """Runs a test module's tests and exits 0 (all passed), 1, or 77 when all that ran passed
    but some were skipped (a skip is a test that could not run here: scripts/test.sh counts
    it as a failure, so it cannot pass CI unseen). Prints the wall time.

    SIGTERM (meson's timeout) becomes KeyboardInterrupt, which unittest does not catch:
    the module cleanups still run, then every Mirror still running is killed, then each
    `last_resort` callable (e.g. an unmount) is called."""
    import unittest
    import mirror
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    ok = False
    skipped = []
    try:
        prog = unittest.main(exit=False, verbosity=2)
        ok = prog.result.wasSuccessful()
        skipped = prog.result.skipped
    finally:
        try:
            mirror.stop_all()
            unittest.case.doModuleCleanups()
        finally:
            for fn in last_resort:
                fn()
        print(f"{os.path.basename(path)}: {time.monotonic() - started:.1f}s", file=sys.stderr)
    if ok and skipped:
        for test, reason in skipped:
            print(f"SKIP: {test.id()}: {reason}", file=sys.stderr)
        sys.exit(77)
    sys.exit(0 if ok else 1)
