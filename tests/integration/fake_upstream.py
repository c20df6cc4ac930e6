"""An in-process fake of Docker Hub's registry for fault-injection tests.

Used ONLY for faults a real registry cannot produce on demand (truncated or
corrupted bodies, connections reset mid-stream, 5xx/429, CDN redirects to
another host, throttled or stalled bodies). Ordinary pull behaviour is tested
against a real registry elsewhere.

What it speaks (HTTP/1.1, keep-alive, threaded, 127.0.0.1 only):
  GET  /v2/                         401 + Bearer challenge unless authorized, else 200 {}
  GET  /token?service=&scope=       {"token": T, "access_token": T, "expires_in": 300}
  GET|HEAD /v2/<name>/manifests/<tag|digest>
  GET|HEAD /v2/<name>/blobs/<digest>  (single Range supported)
  GET  /v2/<name>/tags/list
A request is authorized when it carries `Authorization: Bearer <token>` with a
token this server issued. Blob redirects (fault mode `redirect`) go to a second
server on a different host name (127.0.0.2 when bindable, else `localhost`),
which serves the bytes without auth, like Docker Hub's CDN.

Faults are keyed by reference: a digest, a tag, "token" (the token endpoint;
status modes only), or "*" (every request to the main server, before auth,
like a failing load balancer). Modes:
  truncate         Content-Length N, then close cleanly (FIN) after N/2 bytes
  wrong_bytes      correct length, corrupted content (digest mismatch)
  error_midstream  200 + headers + a third of the body, then reset (RST)
  status_500       500 with a JSON body
  status_429       429 TOOMANYREQUESTS with Retry-After (param retry_after)
  status_401       401 with a Bearer challenge even for a valid token
  redirect         307 Location: <cdn>/... (blobs only; manifests ignore it);
                   sign=False hands out a URL the CDN refuses with 403;
                   location=URL redirects to URL instead (e.g. an internal address)
  html             200 text/html: a web page instead of registry content (a captive
                   portal, a misrouted load balancer), no Docker-Content-Digest
  empty_body       200 with the usual registry headers and Content-Length: 0 (also on the
                   CDN, keyed "cdn:<hex>")
  slow             body throttled to `rate` bytes/s (default 512 KiB/s); every body
                   mode also takes `rate`, e.g. a trickled truncate
  stall            sends `after` bytes (default N/2), then hangs until
                   release_stalls(), stop(), or `max_s` seconds (default 60); with
                   resume=True a release sends the rest (a slow upstream, not a cut)
  hold             blobs only: the body in chunked framing under the Content-Length
                   the mirror trusts (so the response stays open after its last byte):
                   `after` bytes (default N-1), then waits for release_stalls(); sends
                   the rest corrupted (param wrong=True) and waits for release_stalls()
                   again before the closing chunk; each wait bounded by `max_s` (60).
                   wait_held(ref, phase) tells the test where it waits ("last", "end").
A fault applies to every matching request until cleared, or to the next
`times` matching requests.

Every request to either server is recorded (server, method, path, headers, and
the status the fake answered) so tests can count and inspect what the mirror sent. Thread-safe; one lock guards
all mutable state, and no lock is held across socket I/O.
"""
import hashlib
import http.server
import json
import random
import re
import secrets
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

MANIFEST_MEDIA_TYPES = frozenset({
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
})

FAULT_MODES = frozenset({"truncate", "wrong_bytes", "error_midstream", "status_500", "status_429",
                         "status_401", "redirect", "slow", "stall", "html", "empty_body",
                         "hold"})

HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
             b"<body><h1>Please sign in to continue</h1></body></html>\n")

_SEND_PIECE_BYTES = 256 * 1024


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BytesBody:
    """Content held in memory."""

    def __init__(self, data):
        self.data = bytes(data)
        self.size = len(self.data)
        self.digest = sha256_digest(self.data)

    def chunks(self, start, end):
        """Yields the bytes [start, end) in pieces."""
        view = memoryview(self.data)
        for off in range(start, end, _SEND_PIECE_BYTES):
            yield view[off:min(end, off + _SEND_PIECE_BYTES)]


class GeneratedBody:
    """Deterministic content generated on the fly, never held whole in memory.

    Block i (block_bytes each) is one random block whose first 8 bytes are
    replaced by i, big-endian; the last block is cut to `size`. The digest is
    computed once, at construction, in a single streaming pass.
    """

    def __init__(self, size, seed=1, block_bytes=1 << 20):
        self.size = size
        self.block_bytes = block_bytes
        self._block = random.Random(seed).randbytes(block_bytes)
        h = hashlib.sha256()
        for chunk in self.chunks(0, size):
            h.update(chunk)
        self.digest = "sha256:" + h.hexdigest()

    def _block_at(self, i):
        return struct.pack(">Q", i) + self._block[8:]

    def chunks(self, start, end):
        i = start // self.block_bytes
        while i * self.block_bytes < end:
            base = i * self.block_bytes
            block = self._block_at(i)
            lo = max(start - base, 0)
            hi = min(end - base, self.block_bytes)
            yield block if (lo == 0 and hi == self.block_bytes) else block[lo:hi]
            i += 1


@dataclass
class Request:
    """One request as the fake saw it. `headers` keys are lower-case."""
    server: str  # "main" or "cdn"
    method: str
    path: str  # including the query string
    headers: dict
    t: float = field(default_factory=time.monotonic)
    status: int = 0  # the status the fake answered, 0 until it answers

    @property
    def authorization(self):
        return self.headers.get("authorization")


@dataclass
class _Fault:
    mode: str
    params: dict
    remaining: int  # -1 = until cleared


@dataclass
class _Object:
    body: object  # BytesBody | GeneratedBody
    media_type: str


class _Server(http.server.ThreadingHTTPServer):
    """Tracks live connections so stop() can cut keep-alive connections too."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, registry, kind):
        self.registry = registry
        self.kind = kind
        self._conns = set()
        self._reset = set()
        self._conn_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        with self._conn_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def mark_reset(self, request):
        """Closes `request` with RST (no FIN) when its handler finishes."""
        request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._conn_lock:
            self._reset.add(request)

    def shutdown_request(self, request):
        with self._conn_lock:
            self._conns.discard(request)
            reset = request in self._reset
            self._reset.discard(request)
        if reset:
            self.close_request(request)  # linger 0: close sends RST
        else:
            super().shutdown_request(request)

    def cut_all_connections(self):
        with self._conn_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # bounds an idle keep-alive connection

    def log_message(self, fmt, *args):
        pass

    def send_response(self, code, message=None):
        record = getattr(self, "fake_record", None)
        if record is not None:
            record.status = code
        super().send_response(code, message)

    def do_GET(self):
        self.server.registry._dispatch(self, self.server.kind)

    do_HEAD = do_GET

    def _unsupported(self):
        self.server.registry._record(self, self.server.kind)
        self.server.registry._send_error(self, 405, "UNSUPPORTED", "fake upstream is pull-only")

    do_POST = do_PUT = do_PATCH = do_DELETE = _unsupported


_REPO_RE = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")
_TAGS_RE = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_CDN_RE = re.compile(r"^/cdn/sha256/(?P<hex>[0-9a-f]{64})/data$")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _cdn_host_default():
    """A host name other than 127.0.0.1 that still reaches loopback."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.2", 0))
        return "127.0.0.2"
    except OSError:
        return "localhost"


class FakeRegistry:
    """A fake registry on 127.0.0.1 plus its fake CDN on another host name.

    Not started on construction: call start() (or use `with`), and stop()
    always; stop() also cuts keep-alive connections and releases stalls, so
    afterwards the port refuses connections (an "unreachable" upstream).
    """

    def __init__(self, port=0, cdn_host=None, service="fake", token_expires_in=300):
        self._port_wanted = port
        self.cdn_host = cdn_host or _cdn_host_default()
        self.service = service
        self.token_expires_in = token_expires_in
        self._lock = threading.Lock()
        self._manifests = {}  # (name, digest) -> _Object
        self._tags = {}  # (name, tag) -> digest
        self._blobs = {}  # digest -> _Object (any repo name serves a known blob)
        self._faults = {}  # ref -> _Fault
        self._tokens = set()
        self._redirect_sigs = set()
        self._requests = []
        self._sent = {}  # ref -> body bytes written to sockets
        self._stall_release = threading.Event()
        self._held = {}  # (ref, phase) -> responses waiting there now; guarded by _lock
        self._held_changed = threading.Condition(self._lock)
        self._main = None
        self._cdn = None
        self._threads = []

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self):
        self._stall_release = threading.Event()
        self._main = _Server(("127.0.0.1", self._port_wanted), _Handler, self, "main")
        cdn_bind = "127.0.0.1" if self.cdn_host == "localhost" else self.cdn_host
        self._cdn = _Server((cdn_bind, 0), _Handler, self, "cdn")
        self.port = self._main.server_address[1]
        self.cdn_port = self._cdn.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cdn_url = f"http://{self.cdn_host}:{self.cdn_port}"
        self._threads = []
        for srv in (self._main, self._cdn):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                 name=f"fake-{srv.kind}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        """Stops both servers; the main port is closed afterwards. Idempotent."""
        self.release_stalls()
        for srv in (self._main, self._cdn):
            if srv is None:
                continue
            srv.shutdown()
            srv.server_close()
            srv.cut_all_connections()
        for t in self._threads:
            t.join(timeout=10)
        self._main = self._cdn = None
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- content ---------------------------------------------------------------------------
    def register(self, name, digest, data, media_type=None, tags=()):
        """Serves `data` (bytes or a *Body) under `digest`: a manifest of repo `name` when
        media_type is a manifest type, else a blob. The digest is NOT checked, on purpose."""
        body = data if hasattr(data, "chunks") else BytesBody(data)
        obj = _Object(body, media_type or "application/octet-stream")
        with self._lock:
            if media_type in MANIFEST_MEDIA_TYPES:
                self._manifests[(name, digest)] = obj
                for tag in tags:
                    self._tags[(name, tag)] = digest
            else:
                self._blobs[digest] = obj
        return digest

    def add_blob(self, name, data, media_type="application/octet-stream"):
        body = data if hasattr(data, "chunks") else BytesBody(data)
        return self.register(name, body.digest, body, media_type)

    def add_manifest(self, name, data, media_type, tags=()):
        return self.register(name, sha256_digest(data), data, media_type, tags)

    def tag(self, name, tag, digest):
        with self._lock:
            self._tags[(name, tag)] = digest

    def add_image(self, name, tag="latest", layer_bytes=None, config_bytes=None, layers=None):
        """Registers config + one layer (or `layers`, bytes each) + a Docker v2 manifest
        tagged `tag`.

        Returns dict(manifest=bytes, manifest_digest, config_digest, config, layer_digest,
        layer=bytes (the first layer's), layer_digests=[...]).
        """
        if layers is None:
            layers = [layer_bytes if layer_bytes is not None
                      else random.Random(name).randbytes(300_000)]
        config = config_bytes if config_bytes is not None else json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
             "name": name}).encode()
        cd = self.add_blob(name, config, "application/vnd.docker.container.image.v1+json")
        lds = [self.add_blob(name, layer, "application/vnd.docker.image.rootfs.diff.tar.gzip")
               for layer in layers]
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(config), "digest": cd},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(layer), "digest": ld} for layer, ld in zip(layers, lds)],
        }, indent=3).encode()
        md = self.add_manifest(name, manifest, "application/vnd.docker.distribution.manifest.v2+json",
                               tags=(tag,))
        return {"manifest": manifest, "manifest_digest": md, "config_digest": cd,
                "config": config, "layer_digest": lds[0], "layer": layers[0],
                "layer_digests": lds}

    # ---- faults ----------------------------------------------------------------------------
    def set_fault(self, ref, mode, times=None, **params):
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        with self._lock:
            self._faults[ref] = _Fault(mode, params, -1 if times is None else times)

    def clear_fault(self, ref=None):
        """Clears the fault on `ref`, or every fault when ref is None."""
        with self._lock:
            if ref is None:
                self._faults.clear()
            else:
                self._faults.pop(ref, None)

    def release_stalls(self):
        """Ends the stalls in progress; later requests with a `stall` fault stall again."""
        with self._lock:
            old, self._stall_release = self._stall_release, threading.Event()
        old.set()

    def wait_held(self, ref, phase, count=1, timeout_s=30):
        """Waits until `count` responses of a `hold` fault on `ref` wait at `phase`: "last"
        (all but the last bytes sent) or "end" (every byte sent, the closing chunk not).
        True when they do; False after timeout_s."""
        with self._held_changed:
            return self._held_changed.wait_for(lambda: self._held.get((ref, phase), 0) >= count,
                                               timeout=timeout_s)

    def revoke_tokens(self):
        """Every token issued so far is now refused (401), like an expired token."""
        with self._lock:
            self._tokens.clear()

    def expire_redirects(self):
        """Every CDN URL handed out so far now answers 403, like an expired signed URL."""
        with self._lock:
            self._redirect_sigs.clear()

    # ---- observation -----------------------------------------------------------------------
    def requests(self, server=None, method=None, path_contains=None, since=None, status=None):
        """Recorded requests, oldest first, filtered; `status` is one code or a collection."""
        if isinstance(status, int):
            status = (status,)
        with self._lock:
            reqs = list(self._requests)
        return [r for r in reqs
                if (server is None or r.server == server)
                and (method is None or r.method == method)
                and (path_contains is None or path_contains in r.path)
                and (since is None or r.t >= since)
                and (status is None or r.status in status)]

    def clear_requests(self):
        with self._lock:
            self._requests.clear()

    def bytes_sent(self, ref):
        with self._lock:
            return self._sent.get(ref, 0)

    @property
    def issued_tokens(self):
        with self._lock:
            return set(self._tokens)

    # ---- request handling ------------------------------------------------------------------
    def _record(self, h, kind):
        headers = {k.lower(): v for k, v in h.headers.items()}
        h.fake_record = Request(kind, h.command, h.path, headers)
        with self._lock:
            self._requests.append(h.fake_record)

    def _take_fault(self, ref):
        with self._lock:
            f = self._faults.get(ref)
            if f is None:
                return None
            if f.remaining > 0:
                f.remaining -= 1
                if f.remaining == 0:
                    del self._faults[ref]
            return f

    def _dispatch(self, h, kind):
        self._record(h, kind)
        try:
            if kind == "cdn":
                self._serve_cdn(h)
            else:
                self._serve_main(h)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            h.close_connection = True

    def _serve_main(self, h):
        url = urllib.parse.urlsplit(h.path)
        path = url.path
        fault = self._take_fault("*")
        if fault and fault.mode.startswith("status_"):
            return self._send_status_fault(h, fault, None)
        if path == "/token":
            fault = self._take_fault("token") or fault
            if fault and fault.mode.startswith("status_"):
                return self._send_status_fault(h, fault, None)
            return self._serve_token(h, url.query)
        if path in ("/v2/", "/v2"):
            if not self._authorized(h):
                return self._challenge(h, None)
            return self._send(h, 200, b"{}", "application/json")
        m = _TAGS_RE.match(path)
        if m:
            return self._serve_tags(h, m["name"], url.query)
        m = _REPO_RE.match(path)
        if not m:
            return self._send_error(h, 404, "NAME_UNKNOWN", "no such route")
        name, what, ref = m["name"], m["kind"], m["ref"]
        if not self._authorized(h):
            return self._challenge(h, name)
        fault = self._take_fault(ref) or fault
        if fault and fault.mode.startswith("status_"):
            return self._send_status_fault(h, fault, name)
        if fault and fault.mode == "html":
            return self._send(h, 200, HTML_PAGE, "text/html; charset=utf-8")
        if what == "manifests":
            with self._lock:
                digest = ref if ref.startswith("sha256:") else self._tags.get((name, ref))
                obj = self._manifests.get((name, digest)) if digest else None
            if obj is None:
                return self._send_error(h, 404, "MANIFEST_UNKNOWN", f"manifest unknown: {ref}")
            headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
            if fault and fault.mode == "empty_body":
                return self._send(h, 200, b"", obj.media_type, headers)
            return self._send_body(h, obj, ref, headers, fault)
        with self._lock:
            obj = self._blobs.get(ref)
        if obj is None:
            return self._send_error(h, 404, "BLOB_UNKNOWN", f"blob unknown: {ref}")
        if fault and fault.mode == "redirect":
            sig = f"{int(time.time()) + 600}-{secrets.token_hex(8)}"
            if fault.params.get("sign", True):
                with self._lock:
                    self._redirect_sigs.add(sig)
            loc = fault.params.get("location") or f"{self.cdn_url}/cdn/sha256/{ref[7:]}/data?verify={sig}"
            return self._send(h, 307, b"", "text/plain", {"Location": loc})
        if fault and fault.mode == "empty_body":
            return self._send(h, 200, b"", obj.media_type, {"Docker-Content-Digest": ref})
        return self._send_body(h, obj, ref, {"Docker-Content-Digest": ref}, fault)

    def _serve_cdn(self, h):
        url = urllib.parse.urlsplit(h.path)
        m = _CDN_RE.match(url.path)
        sig = urllib.parse.parse_qs(url.query).get("verify", [""])[0]
        with self._lock:
            valid = sig in self._redirect_sigs
            obj = self._blobs.get("sha256:" + m["hex"]) if m else None
        if obj is None:
            return self._send(h, 404, b"not found", "text/plain")
        if not valid:
            return self._send(h, 403, b"<Error>signature expired</Error>", "application/xml")
        # Like a CDN: no registry headers, and no fault except the blob's own body faults.
        fault = self._take_fault("cdn:" + m["hex"])
        if fault and fault.mode == "empty_body":
            return self._send(h, 200, b"", obj.media_type)
        return self._send_body(h, obj, "sha256:" + m["hex"], {}, fault)

    def _serve_token(self, h, query):
        token = "fake-" + secrets.token_hex(16)
        with self._lock:
            self._tokens.add(token)
        body = json.dumps({"token": token, "access_token": token, "expires_in": self.token_expires_in,
                           "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        return self._send(h, 200, body, "application/json")

    def _serve_tags(self, h, name, query):
        if not self._authorized(h):
            return self._challenge(h, name)
        with self._lock:
            tags = sorted(t for (n, t) in self._tags if n == name)
        if not tags:
            return self._send_error(h, 404, "NAME_UNKNOWN", f"repository unknown: {name}")
        return self._send(h, 200, json.dumps({"name": name, "tags": tags}).encode(), "application/json")

    def _authorized(self, h):
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        with self._lock:
            return auth[len("Bearer "):] in self._tokens

    def _challenge_value(self, name):
        v = f'Bearer realm="{self.url}/token",service="{self.service}"'
        if name:
            v += f',scope="repository:{name}:pull"'
        return v

    def _challenge(self, h, name):
        return self._send_error(h, 401, "UNAUTHORIZED", "authentication required",
                                {"WWW-Authenticate": self._challenge_value(name)})

    def _send_status_fault(self, h, fault, name):
        if fault.mode == "status_500":
            return self._send_error(h, 500, "UNKNOWN", "fake internal server error")
        if fault.mode == "status_401":
            return self._send_error(h, 401, "UNAUTHORIZED", "authentication required",
                                    {"WWW-Authenticate": self._challenge_value(name)})
        return self._send_error(
            h, 429, "TOOMANYREQUESTS",
            "You have reached your pull rate limit. (fake)",
            {"Retry-After": str(fault.params.get("retry_after", 60)),
             "RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=21600"})

    def _send_error(self, h, status, code, message, headers=None):
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
        return self._send(h, status, body, "application/json", headers)

    def _send(self, h, status, body, content_type, headers=None):
        h.send_response(status)
        h.send_header("Docker-Distribution-API-Version", "registry/2.0")
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD" and body:
            h.wfile.write(body)

    def _send_body(self, h, obj, ref, headers, fault):
        size = obj.body.size
        start, end, status = 0, size, 200
        rng = h.headers.get("Range")
        if rng:
            m = _RANGE_RE.match(rng.strip())
            if m and (m[1] or m[2]):
                if m[1]:
                    start = int(m[1])
                    end = min(size, int(m[2]) + 1) if m[2] else size
                else:  # suffix range
                    start = max(0, size - int(m[2]))
                if start >= size or start >= end:
                    return self._send(h, 416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                status = 206
                headers = dict(headers, **{"Content-Range": f"bytes {start}-{end - 1}/{size}"})
        h.send_response(status)
        if h.server.kind == "main":
            h.send_header("Docker-Distribution-API-Version", "registry/2.0")
        h.send_header("Content-Type", obj.media_type)
        h.send_header("Content-Length", str(end - start))
        if fault and fault.mode == "hold" and status == 200 and h.command == "GET":
            # Framing by chunks; the Content-Length stays, as the size the mirror holds back to.
            h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Accept-Ranges", "bytes")
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if h.command == "HEAD":
            return
        mode = fault.mode if fault else None
        if mode == "hold" and status == 200 and h.command == "GET":
            return self._send_held_body(h, obj, ref, fault)
        n = end - start
        limit = {"truncate": n // 2, "error_midstream": n // 3}.get(mode, n)
        if mode == "stall":
            limit = min(n, int(fault.params.get("after", n // 2)))
        rate = fault.params.get("rate", 512 * 1024 if mode == "slow" else None) if fault else None
        rate = float(rate) if rate else None
        with self._lock:
            stall_release = self._stall_release
        sent = 0
        t0 = time.monotonic()
        for chunk in obj.body.chunks(start, end):
            if sent >= limit:
                break
            chunk = chunk[:limit - sent]
            if mode == "wrong_bytes":
                b = bytearray(chunk)
                b[len(b) // 2] ^= 0xFF
                chunk = b
            pieces = [chunk] if rate is None else [chunk[i:i + 16384] for i in range(0, len(chunk), 16384)]
            for piece in pieces:
                h.wfile.write(piece)
                sent += len(piece)
                with self._lock:
                    self._sent[ref] = self._sent.get(ref, 0) + len(piece)
                if rate is not None:
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(min(ahead, 1.0))
        if sent < n:
            if mode == "stall":
                released = stall_release.wait(timeout=float(fault.params.get("max_s", 60)))
                if released and fault.params.get("resume"):
                    for chunk in obj.body.chunks(start + sent, end):
                        h.wfile.write(chunk)
                        with self._lock:
                            self._sent[ref] = self._sent.get(ref, 0) + len(chunk)
                    return
            if mode == "error_midstream":
                h.server.mark_reset(h.connection)
            h.close_connection = True

    def _hold(self, ref, phase, max_s):
        with self._lock:
            release = self._stall_release
            self._held[(ref, phase)] = self._held.get((ref, phase), 0) + 1
            self._held_changed.notify_all()
        try:
            release.wait(timeout=max_s)
        finally:
            with self._lock:
                self._held[(ref, phase)] -= 1

    def _send_held_body(self, h, obj, ref, fault):
        """Mode `hold` (see the module doc): chunked, two waits for the test."""
        n = obj.body.size
        after = min(n, int(fault.params.get("after", max(0, n - 1))))
        max_s = float(fault.params.get("max_s", 60))
        data = b"".join(bytes(c) for c in obj.body.chunks(0, n))

        def chunk(piece):
            if piece:
                h.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                h.wfile.flush()
                with self._lock:
                    self._sent[ref] = self._sent.get(ref, 0) + len(piece)

        for off in range(0, after, _SEND_PIECE_BYTES):
            chunk(data[off:min(after, off + _SEND_PIECE_BYTES)])
        self._hold(ref, "last", max_s)
        rest = bytearray(data[after:])
        if rest and fault.params.get("wrong", True):
            rest[-1] ^= 0xFF
        chunk(bytes(rest))
        self._hold(ref, "end", max_s)
        h.wfile.write(b"0\r\n\r\n")
        h.close_connection = True
