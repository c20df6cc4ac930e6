"""A real Docker-Hub-like upstream for the integration tests: docker-registry + token server.

`Upstream(workdir)` owns two processes, both on 127.0.0.1:
  * `docker-registry serve` (CNCF distribution 2.8) with filesystem storage under
    workdir/upstream/storage and Docker Hub's auth: anonymous `GET /v2/...` gets
    `401 WWW-Authenticate: Bearer realm=http://127.0.0.1:<tokenport>/token,
    service="registry.docker.io",scope=...`;
  * tokenserver.py, which signs the tokens with a self-signed key made here by openssl.
Its stdout (the access log, one combined-format line per request) goes to `access.log`,
its stderr (the app log) to `registry.log`, the token server's one-line-per-token log to
`token.log`. All are appended across stop()/start(), and start() after stop() reuses the
same ports and storage, so a test can take the upstream away and bring it back.

Counting helpers read those logs. Requests the tests make themselves carry the
User-Agent harness.TEST_UA and are left out of the counts unless asked for.
Not thread-safe: one test thread drives an Upstream.
"""
import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness  # noqa: E402
from mirror import free_port, wait_until  # noqa: E402

SERVICE = "registry.docker.io"
ISSUER = "auth.docker.io"
PUSH_USER = "pusher"
PUSH_PASSWORD = "pushpass"

# 127.0.0.1 - - [02/Jan/2026:15:04:05 +0000] "GET /v2/ HTTP/1.1" 401 87 "" "ua"
_COMBINED = re.compile(r'^(\S+) \S+ \S+ \[([^\]]*)\] "(\S+) (\S+) ([^"]*)" (\d{3}) (\d+|-) '
                       r'"((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"')


class AccessLine:
    __slots__ = ("method", "path", "status", "bytes", "ua", "raw")

    def __init__(self, m, raw):
        self.method, self.path, self.status = m.group(3), m.group(4), int(m.group(6))
        self.bytes = 0 if m.group(7) == "-" else int(m.group(7))
        self.ua, self.raw = m.group(9), raw

    def __repr__(self):
        return self.raw


class Upstream:
    """auth="token" (Docker Hub's Bearer dance, the default), "basic" (htpasswd: every
    request needs credentials, as a private registry wants them: PUSH_USER's, or the
    users of the `htpasswd` file given) or "none" (anyone may pull and push, as a
    registry:2 run without auth); `name` is the directory under workdir, so that two
    upstreams can share one; `storage` the registry's root directory (default under it)."""

    def __init__(self, workdir, auth="token", name="upstream", htpasswd=None, storage=None):
        if auth not in ("token", "basic", "none"):
            raise ValueError(f"auth must be token, basic or none, not {auth!r}")
        if htpasswd is not None and auth != "basic":
            raise ValueError("an htpasswd file goes with auth=basic")
        self.auth = auth
        self.dir = os.path.join(workdir, name)
        self.storage = storage or os.path.join(self.dir, "storage")
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(self.storage, exist_ok=True)
        self.key = os.path.join(self.dir, "key.pem")
        self.cert = os.path.join(self.dir, "cert.pem")
        self.config = os.path.join(self.dir, "config.yml")
        self.htpasswd = htpasswd or os.path.join(self.dir, "htpasswd")
        self.access_log = os.path.join(self.dir, "access.log")
        self.app_log = os.path.join(self.dir, "registry.log")
        self.token_log = os.path.join(self.dir, "token.log")
        self.port = None
        self.token_port = None
        self._registry = None
        self._token = None
        self._files = []
        if auth == "token":
            self._make_key()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    @property
    def token_url(self):
        return f"http://127.0.0.1:{self.token_port}"

    def _make_key(self):
        if os.path.exists(self.cert):
            return
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                        "-days", "30", "-keyout", self.key, "-out", self.cert,
                        "-subj", "/CN=hubcache-test-token-signer"],
                       check=True, capture_output=True, timeout=60)

    def _auth_config(self):
        if self.auth == "none":
            return ""
        if self.auth == "basic":
            if not os.path.exists(self.htpasswd):
                harness.write_htpasswd(self.htpasswd, (PUSH_USER, PUSH_PASSWORD))
            return f"""auth:
  htpasswd:
    realm: hubcache-test-basic
    path: {self.htpasswd}
"""
        return f"""auth:
  token:
    realm: {self.token_url}/token
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: {self.cert}
"""

    def _write_config(self):
        with open(self.config, "w") as f:
            f.write(f"""version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {self.storage}
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{self.port}
  secret: hubcache-tests-{uuid.uuid4().hex}
health:
  storagedriver:
    enabled: false
{self._auth_config()}""")

    def _open(self, path):
        f = open(path, "ab")
        self._files.append(f)
        return f

    def _start_token_server(self, timeout_s):
        port_file = os.path.join(self.dir, "token.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        argv = [sys.executable, os.path.join(HERE, "tokenserver.py"),
                "--port", str(self.token_port or 0), "--port-file", port_file,
                "--key", self.key, "--issuer", ISSUER, "--service", SERVICE,
                "--user", f"{PUSH_USER}:{PUSH_PASSWORD}", "--log", self.token_log]
        err = self._open(os.path.join(self.dir, "tokenserver.stderr"))
        self._token = subprocess.Popen(argv, stdout=err, stderr=err, start_new_session=True)

        def ready():
            if self._token.poll() is not None:
                raise RuntimeError(f"token server exited with {self._token.returncode}")
            return os.path.exists(port_file)
        wait_until(ready, timeout_s, "the token server to listen")
        with open(port_file) as f:
            self.token_port = int(f.read())

    def _start_registry(self, timeout_s):
        self._write_config()
        self._registry = subprocess.Popen(
            ["docker-registry", "serve", self.config],
            stdout=self._open(self.access_log), stderr=self._open(self.app_log),
            stdin=subprocess.DEVNULL, start_new_session=True)

        def ready():
            if self._registry.poll() is not None:
                return "exited"
            try:
                r = harness.request(self.url, "GET", "/v2/", timeout=2)
            except OSError:
                return False
            return r.status == self._ready_status()
        return wait_until(ready, timeout_s,
                          f"docker-registry to answer /v2/ with {self._ready_status()}")

    def _ready_status(self):
        return 200 if self.auth == "none" else 401

    def start(self, timeout_s=30):
        """Starts both processes (again on the same ports after stop()); waits for 401 on /v2/."""
        try:
            if self.auth == "token":
                self._start_token_server(timeout_s)
            reuse = self.port is not None
            for _ in range(3):  # a fresh free port can be taken by someone else in between
                if not reuse:
                    self.port = free_port()
                if self._start_registry(timeout_s) is True:
                    return self
                self._registry.wait(timeout=5)
                if reuse:
                    break
            raise RuntimeError(f"docker-registry did not start:\n{self.tail(self.app_log)}")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s=10):
        """Stops both processes by PID (SIGTERM, then SIGKILL); safe to call twice."""
        for proc in (self._registry, self._token):
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        self._registry = self._token = None
        for f in self._files:
            f.close()
        self._files = []

    def running(self):
        return self._registry is not None and self._registry.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self):
        """The end of the registry's own log."""
        return self.tail(self.app_log)

    @staticmethod
    def tail(path, n=4000):
        return harness.read_text(path)[-n:]

    # -- logs and counters -----------------------------------------------------------------

    def access_log_lines(self):
        """Every parsed access-log line so far, in order (tests' own requests included)."""
        out = []
        try:
            with open(self.access_log, "rb") as f:
                for raw in f.read().decode(errors="replace").splitlines():
                    m = _COMBINED.match(raw)
                    if m:
                        out.append(AccessLine(m, raw))
        except OSError:
            pass
        return out

    def mark(self):
        """A position in the access log; pass it as `since` to count only later requests."""
        return len(self.access_log_lines())

    def requests(self, method=None, path_regex=None, status=None, since=0, include_tests=False):
        rx = re.compile(path_regex) if path_regex else None
        out = []
        for line in self.access_log_lines()[since:]:
            if not include_tests and line.ua == harness.TEST_UA:
                continue
            if method and line.method != method:
                continue
            if rx and not rx.fullmatch(line.path):
                continue
            if status is not None and not _status_matches(line.status, status):
                continue
            out.append(line)
        return out

    def count_requests(self, method, path_regex, status=None, since=0, include_tests=False):
        """Requests by others (the mirror, skopeo) whose path fully matches path_regex.

        status: None (any), an int, or a string class like "2xx"."""
        return len(self.requests(method, path_regex, status, since, include_tests))

    def sync_log(self, timeout_s=10):
        """Waits until every request the registry answered so far is in the access log.

        Sends a uniquely-named probe and waits for its line: a request answered before the
        probe was sent has its line written by then (the line is written on completion)."""
        probe = f"/v2/?hubcache-sync={uuid.uuid4().hex}"
        harness.request(self.url, "GET", probe, timeout=timeout_s)
        wait_until(lambda: any(l.path == probe for l in self.access_log_lines()[-200:]),
                   timeout_s, "the access log to catch up")

    def token_requests(self, since=0, until=None, include_tests=False):
        """One dict per token request: t, user, scopes, granted, status, ua.

        since/until are positions from token_mark()."""
        out = []
        try:
            with open(self.token_log) as f:
                lines = f.read().splitlines()
        except OSError:
            return out
        for raw in lines[since:until]:
            try:
                e = json.loads(raw)
            except ValueError:
                continue
            if include_tests or e.get("ua") != harness.TEST_UA:
                out.append(e)
        return out

    def token_mark(self):
        return len(self.token_requests(include_tests=True))

    def token_stats(self):
        return harness.request(self.token_url, "GET", "/_stats", timeout=10).json()

    # -- direct access -------------------------------------------------------------------

    def fetch_token(self, scope, creds=None, timeout_s=10):
        q = urllib.parse.urlencode({"service": SERVICE, "scope": scope})
        headers = {}
        if creds:
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{creds[0]}:{creds[1]}".encode()).decode()
        r = harness.request(self.token_url, "GET", f"/token?{q}", headers, timeout=timeout_s)
        if r.status != 200:
            raise RuntimeError(f"token request failed: {r!r}")
        return r.json()["token"]

    def request(self, method, path, headers=None, creds=None, timeout=60, body=None):
        """A request straight to the registry, doing the Bearer dance on a 401 (anonymous
        unless creds=(user, password)); with basic auth, as creds or else the push user.
        Marked as the tests' own in the logs."""
        if self.auth == "basic" or (self.auth == "none" and creds):
            h = dict(headers or {})
            h["Authorization"] = harness.basic_auth(*(creds or (PUSH_USER, PUSH_PASSWORD)))
            return harness.request(self.url, method, path, h, body, timeout=timeout)
        r = harness.request(self.url, method, path, headers, body, timeout=timeout)
        challenge = harness.bearer_challenge(r.header("WWW-Authenticate"))
        if r.status != 401 or challenge is None or "scope" not in challenge:
            return r
        token = self.fetch_token(challenge["scope"], creds)
        h = dict(headers or {})
        h["Authorization"] = f"Bearer {token}"
        return harness.request(self.url, method, path, h, body, timeout=timeout)

    def manifest(self, repo, ref):
        """(digest, bytes) of repo's manifest `ref` (a tag or a digest), any media type."""
        r = self.request("GET", f"/v2/{repo}/manifests/{ref}", {"Accept": harness.ACCEPT_ALL})
        if r.status != 200:
            raise RuntimeError(f"GET {repo}:{ref}: {r!r}")
        return r.header("Docker-Content-Digest"), r.body

    def put_manifest(self, repo, tag, media_type, raw):
        """Pushes `raw` (whose blobs the repository already holds) as repo:tag, as the
        pusher: the tag moves to it."""
        r = self.request("PUT", f"/v2/{repo}/manifests/{tag}", {"Content-Type": media_type},
                         creds=(PUSH_USER, PUSH_PASSWORD), body=raw)
        if r.status != 201:
            raise RuntimeError(f"PUT {repo}:{tag}: {r!r}")
        return r.header("Docker-Content-Digest")


def started_upstream(label, add_cleanup, **kwargs):
    """A fresh work directory for `label` (harness.module_workdir) and a started Upstream
    in it (kwargs as Upstream's); both are undone by `add_cleanup` (a class's
    addClassCleanup, or unittest.addModuleCleanup), the upstream first. Returns
    (work directory, upstream)."""
    work = harness.cleaned_workdir(label, add_cleanup)
    up = Upstream(work, **kwargs)
    add_cleanup(up.stop)
    up.start()
    return work, up


def _status_matches(status, want):
    if isinstance(want, int):
        return status == want
    if isinstance(want, str) and len(want) == 3 and want.endswith("xx"):
        return str(status)[0] == want[0]
    if isinstance(want, (tuple, list, set)):
        return any(_status_matches(status, w) for w in want)
    raise ValueError(f"bad status filter {want!r}")
