#!/usr/bin/env python3
"""Pushes to and pulls from hosted repositories: hubcache beside distribution 2.8.

    bench/push.py --bin BUILD/hubcache [--rounds 3] [--state DIR] [--out RESULTS]
    bench/push.py --report RESULTS          # the report of an earlier run again

Starts, for every round, on free loopback ports and each in its own fresh root:
  dist      Debian's `docker-registry` (the CNCF registry 2.8): filesystem storage,
            no auth, in-memory blob descriptor cache, access log on;
  hubcache  `hubcache serve --hosted 'bench/*'`, its upstream being that dist (for
            the mirror-hit comparison only), --tag-freshness 1h, access log on;
and stops both by their pids at the end of the round (and on any failure).
Rounds alternate the order of the targets. Per target and round, each phase
timed on its own:

  push_1g     one 1 GiB blob to bench/big: POST, one PATCH streaming the body
              (Content-Length, no Content-Range), PUT ?digest=. Deterministic
              content (16 distinct 1 MiB random blocks in turn), digest
              computed once per run.
  push_many   the image bench/many:1 of 50 x 1 MB layers, as docker pushes it: 3
              threads, each with its own keep-alive connection, per layer HEAD
              (404), POST, PATCH, PUT ?digest=; then the config blob, then the
              manifest PUT (docker schema 2).
  pull_many   that image pulled back: manifest by tag, config, the 50 layers by 3
              threads; --pull-repeat times (median), after one untimed pull that
              checks every digest.
  pull_1g     GET of the 1 GiB blob by one client; --pull-repeat times (median).

For hubcache, the same pulls of an image of the same shape that it mirrors
(mirror/many:1 and the 1 GiB mirror/big, other content, pushed to dist and
pulled once through hubcache before the timed phases: every timed mirror pull
is a hit), interleaved with the hosted pulls: mirror_pull_many, mirror_pull_1g.

Peak RSS: /proc/PID/clear_refs (5) resets VmHWM before each phase, VmHWM is read
after it: rss_<phase>_MiB; rss_peak_MiB is the highest over the round.

Writes RESULTS/push-<target>-r<round>.txt (`name value unit` per line, as
bench.sh does) and RESULTS/push-report.md: medians of the rounds, the ratios
hubcache / dist (median of the per-round ratios and their range), the goals
(push >= 1.5x dist; hosted hits >= 1.0x the mirror's hits).

--dry-run: the hosted role of the `hubcache` target is a second docker-registry
(the client checked against a reference server); its mirror role, if --bin is
given, a hubcache without --hosted. Python stdlib only; every loop is bounded.
"""
import argparse
import collections
import hashlib
import http.client
import json
import os
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

from bench_common import fmt, parse

MB = 1000 * 1000
MiB = 1024 * 1024
GiB = 1024 * MiB
BIG_SIZE = GiB
BLOCK = MiB
POOL_BLOCKS = 16
LAYERS = 50
LAYER_SIZE = 1 * MB
WORKERS = 3
TIMEOUT = 300  # seconds, every socket operation

MT_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT = ", ".join([MT_MANIFEST, "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])


def log(*a):
    print(time.strftime("[%H:%M:%S]"), *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- content

class BigBlob:
    """size bytes: POOL_BLOCKS distinct random 1 MiB blocks, in turn (seeded)."""

    def __init__(self, seed, size, cache_dir):
        rnd = random.Random(seed)
        self.pool = [rnd.randbytes(BLOCK) for _ in range(POOL_BLOCKS)]
        self.size = size
        self.digest = self._digest(seed, cache_dir)

    def chunks(self):
        left, i = self.size, 0
        while left > 0:  # size / BLOCK iterations
            block = memoryview(self.pool[i % POOL_BLOCKS])
            n = min(left, BLOCK)
            yield block[:n]
            left -= n
            i += 1

    def _digest(self, seed, cache_dir):
        key = os.path.join(cache_dir, f"bigblob-{seed}-{self.size}-{POOL_BLOCKS}.digest") if cache_dir else None
        if key and os.path.exists(key):
            return open(key).read().strip()
        t = time.monotonic()
        h = hashlib.sha256()
        for c in self.chunks():
            h.update(c)
        d = "sha256:" + h.hexdigest()
        log(f"digest of the {self.size >> 20} MiB blob (seed {seed}): {d} in {time.monotonic() - t:.1f} s")
        if key:
            with open(key, "w") as f:
                f.write(d + "\n")
        return d


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Image:
    """LAYERS random layers of LAYER_SIZE, a config, a schema-2 manifest (seeded)."""

    def __init__(self, seed):
        rnd = random.Random(seed)
        self.layers = [rnd.randbytes(LAYER_SIZE) for _ in range(LAYERS)]
        self.layer_digests = [sha(b) for b in self.layers]
        cfg = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
               "config": {"Env": [f"SEED={seed}"]},
               "rootfs": {"type": "layers", "diff_ids": self.layer_digests}}
        self.config = json.dumps(cfg, sort_keys=True).encode()
        self.config_digest = sha(self.config)
        man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
               "config": {"mediaType": MT_CONFIG, "size": len(self.config), "digest": self.config_digest},
               "layers": [{"mediaType": MT_LAYER, "size": len(b), "digest": d}
                          for b, d in zip(self.layers, self.layer_digests)]}
        self.manifest = json.dumps(man, indent=3).encode()
        self.manifest_digest = sha(self.manifest)
        self.total = sum(len(b) for b in self.layers) + len(self.config) + len(self.manifest)


# ---------------------------------------------------------------- HTTP

class Client:
    """One keep-alive connection to base (http://host:port)."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def _c(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        return self.conn

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, sink=None):
        """Returns (status, headers, body bytes or bytes count when sink)."""
        h = dict(headers or {})
        if body is None and method in ("POST", "PUT", "PATCH"):
            h.setdefault("Content-Length", "0")
        c = self._c()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            if sink is not None:
                n = 0
                mv = memoryview(sink)
                for _ in range(1 << 22):  # bounded: 4 Mi reads of <= len(sink)
                    k = r.readinto(mv)
                    if not k:
                        break
                    n += k
                data = n
            else:
                data = r.read()
            if r.will_close:
                self.close()
            return r.status, r.headers, data
        except Exception:
            self.close()
            raise


def location_path(loc):
    u = urllib.parse.urlsplit(loc)
    return u.path + ("?" + u.query if u.query else "")


def with_query(path, key, value):
    return path + ("&" if "?" in path else "?") + key + "=" + urllib.parse.quote(value, safe=":")


def expect(what, status, want, body=b""):
    if status not in want:
        text = body[:300] if isinstance(body, bytes) else body
        raise RuntimeError(f"{what}: HTTP {status} (want {want}): {text!r}")


def push_blob(cl, repo, data, digest, size, check_exists=True, chunked=False, steps=None):
    """HEAD (docker's existence check), POST, one PATCH with the whole body, PUT ?digest=.
    chunked: the PATCH body in Transfer-Encoding: chunked (as moby's pusher sends it)
    instead of with a Content-Length (as containerd's does). steps: a dict that gets
    the seconds of each request (post, patch, put)."""
    t = time.monotonic()
    if check_exists:
        st, _, _ = cl.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if st == 200:
            return False
    st, h, b = cl.request("POST", f"/v2/{repo}/blobs/uploads/")
    expect(f"POST upload {repo}", st, (202,), b)
    t1 = time.monotonic()
    loc = location_path(h["Location"])
    headers = {"Content-Type": "application/octet-stream"}
    if chunked:
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = iter([data])
    else:
        headers["Content-Length"] = str(size)
    st, h, b = cl.request("PATCH", loc, body=data, headers=headers)
    expect(f"PATCH {repo} {digest[:19]}", st, (202,), b)
    t2 = time.monotonic()
    loc = location_path(h.get("Location") or loc)
    st, h, b = cl.request("PUT", with_query(loc, "digest", digest))
    expect(f"PUT {repo} {digest[:19]}", st, (201,), b)
    if steps is not None:
        steps.update(post=t1 - t, patch=t2 - t1, put=time.monotonic() - t2)
    got = h.get("Docker-Content-Digest")
    if got and got != digest:
        raise RuntimeError(f"PUT {repo}: Docker-Content-Digest {got}, want {digest}")
    return True


def run_workers(n, items, fn, make_client):
    """n threads, each with its own client, take items from a queue until it is empty."""
    q = queue.Queue()
    for it in items:
        q.put(it)
    errors = []

    def work():
        cl = make_client()
        try:
            for _ in range(len(items)):  # bounded by the number of items
                try:
                    it = q.get_nowait()
                except queue.Empty:
                    return
                fn(cl, it)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            errors.append(e)
        finally:
            cl.close()

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 4)
    if any(t.is_alive() for t in threads):
        raise RuntimeError("a worker did not finish")
    if errors:
        raise errors[0]


def push_image(base, repo, tag, img, chunked=False):
    cl = Client(base)
    try:
        run_workers(WORKERS, list(range(LAYERS)),
                    lambda c, i: push_blob(c, repo, img.layers[i], img.layer_digests[i], LAYER_SIZE,
                                          chunked=chunked),
                    lambda: Client(base))
        push_blob(cl, repo, img.config, img.config_digest, len(img.config), chunked=chunked)
        st, h, b = cl.request("PUT", f"/v2/{repo}/manifests/{tag}", body=img.manifest,
                              headers={"Content-Type": MT_MANIFEST,
                                       "Content-Length": str(len(img.manifest))})
        expect(f"PUT manifest {repo}:{tag}", st, (201,), b)
    finally:
        cl.close()


def pull_image(base, repo, tag, verify=False):
    """Manifest by tag, config, layers by WORKERS threads. Returns (bytes, cache results)."""
    cl = Client(base)
    caches = collections.Counter()
    lock = threading.Lock()
    try:
        st, h, man = cl.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
        expect(f"GET manifest {repo}:{tag}", st, (200,), man)
        caches[h.get("X-Hubcache-Cache", "-")] += 1
        m = json.loads(man)
        if verify and h.get("Docker-Content-Digest") not in (None, sha(man)):
            raise RuntimeError(f"manifest {repo}:{tag}: Docker-Content-Digest differs from its sha256")
        blobs = [m["config"]] + m["layers"]
        total = [len(man)]

        def get(c, desc):
            if verify:
                st, hh, data = c.request("GET", f"/v2/{repo}/blobs/{desc['digest']}")
                n = len(data) if isinstance(data, bytes) else 0
                if st == 200 and sha(data) != desc["digest"]:
                    raise RuntimeError(f"blob {desc['digest']}: content does not match")
            else:
                st, hh, n = c.request("GET", f"/v2/{repo}/blobs/{desc['digest']}", sink=c.buf)
            expect(f"GET blob {repo} {desc['digest'][:19]}", st, (200,))
            if n != desc["size"]:
                raise RuntimeError(f"blob {desc['digest']}: {n} bytes, want {desc['size']}")
            with lock:
                total[0] += n
                caches[hh.get("X-Hubcache-Cache", "-")] += 1

        def mk():
            c = Client(base)
            c.buf = bytearray(BLOCK)
            return c

        run_workers(WORKERS, blobs, get, mk)
        return total[0], caches
    finally:
        cl.close()


def get_blob(base, repo, digest, size):
    cl = Client(base)
    try:
        st, h, n = cl.request("GET", f"/v2/{repo}/blobs/{digest}", sink=bytearray(BLOCK))
        expect(f"GET blob {repo} {digest[:19]}", st, (200,))
        if n != size:
            raise RuntimeError(f"blob {digest}: {n} bytes, want {size}")
        return h.get("X-Hubcache-Cache", "-")
    finally:
        cl.close()


def latencies(targets, n):
    """targets: [(label, base, repo, manifest tag, blob digest, blob size)]. n rounds of, for
    each target in turn on its own keep-alive connection, a GET of the manifest by tag and a
    GET of the blob: {label: (manifest p50 ms, blob p50 ms)}."""
    clients = {t[0]: Client(t[1]) for t in targets}
    ms = {t[0]: ([], []) for t in targets}
    sink = bytearray(BLOCK)
    try:
        for _ in range(n):
            for label, base, repo, tag, digest, size in targets:
                cl = clients[label]
                t = time.monotonic()
                st, _, man = cl.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
                expect(f"GET manifest {repo}:{tag}", st, (200,), man)
                t1 = time.monotonic()
                st, _, got = cl.request("GET", f"/v2/{repo}/blobs/{digest}", sink=sink)
                expect(f"GET blob {repo}", st, (200,))
                if got != size:
                    raise RuntimeError(f"blob {digest}: {got} bytes, want {size}")
                ms[label][0].append((t1 - t) * 1000)
                ms[label][1].append((time.monotonic() - t1) * 1000)
    finally:
        for cl in clients.values():
            cl.close()
    return {k: (statistics.median(a), statistics.median(b)) for k, (a, b) in ms.items()}


# ---------------------------------------------------------------- servers

def free_ports(n):
    """n distinct free loopback ports (all bound at once while they are picked)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_free(p):
    """Nobody listens on p (connections of the previous round in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False


class Server:
    """A process in its own session, in a fresh directory; stopped by its pid."""

    def __init__(self, name, kind, port, state):
        self.name, self.kind, self.port = name, kind, port
        self.dir = os.path.join(state, name)
        self.root = os.path.join(self.dir, "root")
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None
        self.env = None  # the process's environment; None: this one's

    def command(self):
        raise NotImplementedError

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.root)
        if not port_free(self.port):
            raise RuntimeError(f"{self.name}: port {self.port} is in use")
        out = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=self.env)
        out.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: {self.tail()}")
            try:
                st, _, _ = Client(self.url).request("GET", "/v2/")
                if st in (200, 401):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer on :{self.port} within 30 s: {self.tail()}")

    def tail(self):
        try:
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                return f.read()[-600:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, wipe=True):
        p = self.proc
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {p.pid}) did not stop on TERM within 20 s: KILL")
                p.kill()
                p.wait(timeout=20)
        self.proc = None
        if wipe:
            shutil.rmtree(self.root, ignore_errors=True)

    def pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def reset_hwm(self):
        pid = self.pid()
        if pid:
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass

    def cpu_s(self):
        """user + system CPU seconds of the process (all its threads) so far."""
        pid = self.pid()
        if not pid:
            return None
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def status_kb(self, field):
        pid = self.pid()
        if not pid:
            return None
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


class Dist(Server):
    def command(self):
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {self.root}
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{self.port}
  secret: bench-push-{os.urandom(6).hex()}
health:
  storagedriver:
    enabled: false
""")
        return [self.bin, "serve", cfg]


class Hubcache(Server):
    def command(self):
        cmd = [self.bin, "serve", "--addr", f"127.0.0.1:{self.port}", "--upstream", self.upstream,
               "--root", self.root, "--tag-freshness", "1h",
               "--access-log", os.path.join(self.dir, "access.log")]
        if self.hosted:
            cmd += ["--hosted", self.hosted]
        return cmd + self.extra


# ---------------------------------------------------------------- rounds

PERF = {"phases": set(), "out": "", "label": ""}  # --perf: phases recorded, where


class Perf:
    """`perf record -a -g` of the whole machine around one phase, then
    bench/perf_summary.py for the server's process -> LABEL-PHASE.perf.txt."""

    def __init__(self, server, phase):
        self.server, self.proc = server, None
        if phase not in PERF["phases"] or not server.pid():
            return
        self.base = os.path.join(PERF["out"], f"{PERF['label']}-{phase}")
        self.proc = subprocess.Popen(["perf", "record", "-q", "-a", "-g", "-F", "999", "-o",
                                      self.base + ".perf.data"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(1)

    def stop(self):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        comm = "hubcache" if self.server.kind == "hubcache" else "docker-registry"
        with open(self.base + ".perf.txt", "w") as f:
            subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "perf_summary.py"),
                            self.base + ".perf.data", comm, str(self.server.pid())],
                           stdout=f, stderr=subprocess.DEVNULL, timeout=600)
        log(f"perf: {self.base}.perf.txt")


class Phase:
    """One measured call: wall seconds, the server's VmHWM (reset before) and CPU
    seconds (user+system, all threads), this client's CPU seconds."""

    def __init__(self, server, fn, perf=""):
        prof = Perf(server, perf) if perf else None
        server.reset_hwm()
        cpu0, ccpu0 = server.cpu_s(), time.process_time()
        t = time.monotonic()
        self.result = fn()
        self.wall = time.monotonic() - t
        cpu1 = server.cpu_s()
        self.client_cpu = time.process_time() - ccpu0
        self.cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        kb = server.status_kb("VmHWM")
        self.hwm = kb / 1024 if kb else None
        if prof:
            prof.stop()


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def emit_phase(emit, name, phases, nbytes):
    """name_MBps and name_s (medians over phases), cpu figures, returns the peak VmHWM."""
    wall = med([p.wall for p in phases])
    emit(f"{name}_s", f"{wall:.3f}", "s")
    emit(f"{name}_MBps", f"{med([nbytes / MB / p.wall for p in phases]):.1f}", "MB/s")
    cpu = med([p.cpu for p in phases])
    if cpu is not None:
        emit(f"cpu_{name}_s", f"{cpu:.3f}", "s (server CPU)")
    emit(f"client_cpu_{name}_s", f"{med([p.client_cpu for p in phases]):.3f}", "s")
    hwm = max((p.hwm or 0) for p in phases)
    emit(f"rss_{name}_MiB", f"{hwm:.1f}", "MiB")
    return hwm


def push_big(base, repo, big, chunked):
    cl = Client(base)
    steps = {}
    try:
        push_blob(cl, repo, big.chunks(), big.digest, big.size, check_exists=False, chunked=chunked,
                  steps=steps)
        return steps
    finally:
        cl.close()


def run_target(t, big, img, mirror_big, mirror_img, args, emit):
    """All phases of one target. t: dict(name, hosted=Server, mirror=Server or None)."""
    srv, url = t["hosted"], t["hosted"].url
    chunked = args.chunked
    peaks = []
    PERF["label"] = t["name"]
    p = Phase(srv, lambda: push_big(url, "bench/big", big, chunked), "push_1g")
    peaks.append(emit_phase(emit, "push_1g", [p], big.size))
    for k in ("post", "patch", "put"):
        emit(f"push_1g_{k}_s", f"{p.result[k]:.3f}", "s")
    p = Phase(srv, lambda: push_image(url, "bench/many", "1", img, chunked), "push_many")
    peaks.append(emit_phase(emit, "push_many", [p], img.total))

    mirror = t.get("mirror")
    # Untimed: every digest checked once (and the page cache warm alike for all).
    pull_image(url, "bench/many", "1", verify=True)
    if mirror:
        pull_image(mirror.url, "mirror/many", "1", verify=True)
    hosted_pulls, mirror_pulls = [], []
    for i in range(args.pull_repeat):  # hosted and mirror pulls interleaved
        hosted_pulls.append(Phase(srv, lambda: pull_image(url, "bench/many", "1"),
                                  "pull_many" if i == 0 else ""))
        if mirror:
            mirror_pulls.append(Phase(mirror, lambda: pull_image(mirror.url, "mirror/many", "1")))
    peaks.append(emit_phase(emit, "pull_many", hosted_pulls, img.total))
    if mirror_pulls:
        paired = [(img.total / h.wall) / (mirror_img.total / m.wall)
                  for h, m in zip(hosted_pulls, mirror_pulls)]
        emit("pull_many_paired_x", f"{statistics.median(paired):.3f}",
             "x (median over adjacent pulls of hosted / mirror MB/s)")
        (peaks if mirror is srv else []).append(emit_phase(emit, "mirror_pull_many", mirror_pulls, mirror_img.total))
        caches = collections.Counter()
        for p in mirror_pulls:
            caches.update(p.result[1])
        emit("mirror_pull_many_hits", caches.get("hit", 0), f"of {sum(caches.values())} answers")

    # Latency of single hits, one connection each, hosted and mirror alternating.
    lt = [("hosted", url, "bench/many", "1", img.layer_digests[0], LAYER_SIZE)]
    if mirror:
        lt.append(("mirror", mirror.url, "mirror/many", "1", mirror_img.layer_digests[0], LAYER_SIZE))
    lat = latencies(lt, args.latency_n)
    emit("get_manifest_p50_ms", f"{lat['hosted'][0]:.3f}", "ms")
    emit("get_blob1m_p50_ms", f"{lat['hosted'][1]:.3f}", "ms")
    if mirror:
        emit("mirror_get_manifest_p50_ms", f"{lat['mirror'][0]:.3f}", "ms")
        emit("mirror_get_blob1m_p50_ms", f"{lat['mirror'][1]:.3f}", "ms")

    hosted_pulls, mirror_pulls = [], []
    for i in range(args.pull_1g_repeat):
        hosted_pulls.append(Phase(srv, lambda: get_blob(url, "bench/big", big.digest, big.size),
                                  "pull_1g" if i == 0 else ""))
        if mirror and mirror_big:
            mirror_pulls.append(Phase(mirror, lambda: get_blob(
                mirror.url, "mirror/big", mirror_big.digest, mirror_big.size)))
    peaks.append(emit_phase(emit, "pull_1g", hosted_pulls, big.size))
    if mirror_pulls:
        (peaks if mirror is srv else []).append(emit_phase(emit, "mirror_pull_1g", mirror_pulls, mirror_big.size))
        emit("mirror_pull_1g_hits", sum(1 for p in mirror_pulls if p.result == "hit"),
             f"of {len(mirror_pulls)} answers")
    emit("rss_peak_MiB", f"{max(peaks):.1f}", "MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="", help="hubcache binary (with --hosted)")
    ap.add_argument("--dist-bin", default="/usr/bin/docker-registry")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pull-repeat", type=int, default=5, help="timed pulls of the image per round")
    ap.add_argument("--pull-1g-repeat", type=int, default=3, help="timed GETs of the 1 GiB blob")
    ap.add_argument("--latency-n", type=int, default=100,
                    help="GETs of the manifest and of a 1 MB layer for the hit latencies")
    ap.add_argument("--chunked", action="store_true",
                    help="PATCH bodies in Transfer-Encoding: chunked instead of with a Content-Length")
    ap.add_argument("--state", default="/tmp/bench-push")
    ap.add_argument("--out", default="")
    ap.add_argument("--hubcache-port", type=int, default=0, help="default: a free port")
    ap.add_argument("--dist-port", type=int, default=0, help="default: a free port")
    ap.add_argument("--hubcache-args", default="", help="extra `hubcache serve` flags")
    ap.add_argument("--targets", default="hubcache,dist")
    ap.add_argument("--no-mirror-big", action="store_true",
                    help="skip the 1 GiB mirror hit (saves 1 GiB in each root and ~10 s a round)")
    ap.add_argument("--dry-run", action="store_true",
                    help="hubcache's hosted role played by a second docker-registry")
    ap.add_argument("--perf", default="", metavar="PHASES",
                    help="record `perf record -a -g` in the first round during these phases "
                         "(push_1g,push_many,pull_many,pull_1g) of each target")
    ap.add_argument("--report", metavar="RESULTS", help="only (re)write the report of RESULTS")
    args = ap.parse_args()

    if args.report:
        text = report(args.report)
        print(text)
        return
    if not args.bin and not args.dry_run:
        sys.exit("push.py: --bin is required (or --dry-run)")
    os.makedirs(args.state, exist_ok=True)
    out = args.out or os.path.join(args.state, "results", time.strftime("push-%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    log(f"results in {out}")

    targets = [t for t in args.targets.split(",") if t]
    ports = free_ports(3)
    dist = Dist("dist", "dist", args.dist_port or ports[0], args.state)
    dist.bin = args.dist_bin
    servers = [dist]
    hosted = mirror = None
    if "hubcache" in targets:
        if args.dry_run:
            hosted = Dist("dist2", "dist", ports[2], args.state)
            hosted.bin = args.dist_bin
            servers.append(hosted)
            if args.bin:
                mirror = Hubcache("hubcache-mirror", "hubcache", args.hubcache_port or ports[1], args.state)
                mirror.hosted = ""
        else:
            hosted = mirror = Hubcache("hubcache", "hubcache", args.hubcache_port or ports[1], args.state)
            mirror.hosted = "bench/*"
            servers.append(hosted)
        if mirror:
            mirror.bin, mirror.upstream = args.bin, dist.url
            mirror.extra = args.hubcache_args.split()
            if mirror is not hosted:
                servers.append(mirror)

    stopping = []

    def on_signal(sig, _frame):
        stopping.append(sig)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)

    big = BigBlob(1, BIG_SIZE, args.state)
    mirror_big = None if args.no_mirror_big or not mirror else BigBlob(2, BIG_SIZE, args.state)
    img, mirror_img = Image(11), Image(12)
    versions = [subprocess.run([args.dist_bin, "--version"], capture_output=True, text=True).stdout.strip()]
    if args.bin:
        head = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse",
                               "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        versions.append(f"hubcache {os.path.realpath(args.bin)} (checkout at {head or '?'})")
    with open(os.path.join(out, "push-info.txt"), "w") as f:
        f.write(f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\nrounds {args.rounds}\n"
                f"pull_repeat {args.pull_repeat} {args.pull_1g_repeat}\ndry_run {args.dry_run}\n"
                f"chunked {args.chunked}\n"
                + "".join(f"version {v}\n" for v in versions)
                + f"hubcache_args {args.hubcache_args}\nload {open('/proc/loadavg').read().strip()}\n")

    try:
        for rnd in range(1, args.rounds + 1):
            log(f"round {rnd}: starting " + ", ".join(f"{s.name} :{s.port}" for s in servers))
            for s in servers:
                s.start()
            if mirror:
                # The mirror's image lives in dist (other content, same shape) and is
                # pulled once through hubcache: every timed mirror pull is a hit.
                push_image(dist.url, "mirror/many", "1", mirror_img)
                pull_image(mirror.url, "mirror/many", "1")
                if mirror_big:
                    push_blob(Client(dist.url), "mirror/big", mirror_big.chunks(), mirror_big.digest,
                              mirror_big.size, check_exists=False)
                    get_blob(mirror.url, "mirror/big", mirror_big.digest, mirror_big.size)
                time.sleep(1)
            order = targets if rnd % 2 else targets[::-1]
            PERF["out"] = out
            PERF["phases"] = set(p for p in args.perf.split(",") if p) if rnd == 1 else set()
            for name in order:
                lines = []

                def emit(k, v, unit):
                    lines.append(f"{k:28s} {v} {unit}")

                t = {"name": name, "hosted": dist if name == "dist" else hosted,
                     "mirror": mirror if name == "hubcache" else None}
                log(f"round {rnd}: {name}")
                t0 = time.monotonic()
                try:
                    run_target(t, big, img, mirror_big, mirror_img, args, emit)
                    emit("errors", 0, "n")
                except (RuntimeError, OSError, http.client.HTTPException, ValueError) as e:
                    log(f"round {rnd}: {name} failed: {e}")
                    emit("errors", 1, "n")
                    lines.append(f"# error: {e}")
                emit("phase_wall_s", f"{time.monotonic() - t0:.1f}", "s")
                head = f"# {name} round {rnd}: " + (
                    "docker-registry" if t["hosted"].kind == "dist" else "hubcache") + \
                    f" pid {t['hosted'].pid()} {t['hosted'].url}"
                with open(os.path.join(out, f"push-{name}-r{rnd}.txt"), "w") as f:
                    f.write(head + "\n" + "\n".join(lines) + "\n")
                for line in lines:
                    log("   " + line)
            for s in servers:
                s.stop()
    except KeyboardInterrupt:
        log("interrupted")
    except (RuntimeError, OSError, http.client.HTTPException, ValueError) as e:
        log(f"stopped: {e}")
        stopping.append(e)
    finally:
        for s in servers:
            s.stop(wipe=True)
    text = report(out)
    with open(os.path.join(out, "push-report.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"report: {out}/push-report.md")
    if stopping:
        sys.exit(1)


# ---------------------------------------------------------------- report

FIGURES = [  # (figure, unit)
    ("push_1g_MBps", "MB/s"),
    ("push_1g_patch_s", "s"),
    ("push_1g_put_s", "s"),
    ("push_many_MBps", "MB/s"),
    ("push_many_s", "s"),
    ("pull_many_MBps", "MB/s"),
    ("pull_1g_MBps", "MB/s"),
    ("get_manifest_p50_ms", "ms"),
    ("get_blob1m_p50_ms", "ms"),
    ("cpu_push_1g_s", "server CPU s"),
    ("cpu_push_many_s", "server CPU s"),
    ("cpu_pull_many_s", "server CPU s"),
    ("cpu_pull_1g_s", "server CPU s"),
    ("rss_push_1g_MiB", "MiB"),
    ("rss_push_many_MiB", "MiB"),
    ("rss_pull_many_MiB", "MiB"),
    ("rss_pull_1g_MiB", "MiB"),
    ("rss_peak_MiB", "MiB"),
]
GOALS = {"push_1g_MBps": 1.5, "push_many_MBps": 1.5}
MIRROR_PAIRS = [  # (hosted figure, mirror figure, unit, higher is better)
    ("pull_many_MBps", "mirror_pull_many_MBps", "MB/s", True),
    ("pull_1g_MBps", "mirror_pull_1g_MBps", "MB/s", True),
    ("get_manifest_p50_ms", "mirror_get_manifest_p50_ms", "ms", False),
    ("get_blob1m_p50_ms", "mirror_get_blob1m_p50_ms", "ms", False),
]


def report(root):
    by = collections.defaultdict(dict)  # by[target][round] = values
    for name in os.listdir(root):
        if name.startswith("push-") and name.endswith(".txt") and "-r" in name:
            target, rnd = name[5:-4].rsplit("-r", 1)
            if rnd.isdigit():
                by[target][int(rnd)] = parse(os.path.join(root, name))
    info = ""
    if os.path.exists(os.path.join(root, "push-info.txt")):
        info = open(os.path.join(root, "push-info.txt")).read()
    rounds = sorted({r for t in by.values() for r in t})

    def med(t, fig):
        v = [by[t][r][fig] for r in by.get(t, {}) if fig in by[t][r]]
        return statistics.median(v) if v else None

    def ratios(ta, fa, tb, fb):
        return [by[ta][r][fa] / by[tb][r][fb] for r in rounds
                if r in by.get(ta, {}) and r in by.get(tb, {}) and fa in by[ta][r]
                and by[tb][r].get(fb)]

    out = [f"Rounds: {len(rounds)}; each figure the median of the rounds; ratio = the median of the "
           "per-round ratios hubcache / dist (range: lowest-highest round). MB = 10^6 bytes."]
    if "dry_run True" in info:
        out.append("\n**Dry run**: the `hubcache` column's hosted role is a second docker-registry.")
    out.append("")
    out.append("| figure | unit | hubcache | dist | ratio | range | goal | met |")
    out.append("|---|---|---|---|---|---|---|---|")
    verdicts = []
    for fig, unit in FIGURES:
        h, d = med("hubcache", fig), med("dist", fig)
        rr = ratios("hubcache", fig, "dist", fig)
        r = statistics.median(rr) if rr else None
        goal, met = "", ""
        if fig in GOALS and r is not None:
            goal = f">= {GOALS[fig]:g}x dist"
            ok = r >= GOALS[fig]
            met = ("yes" if ok else "**no**") + (", within the range" if min(rr) < GOALS[fig] <= max(rr) or
                                                  (not ok and max(rr) >= GOALS[fig]) else "")
            verdicts.append((fig, ok, f"{r:.2f}x dist (goal >= {GOALS[fig]:g}x)"))
        out.append(f"| `{fig}` | {unit} | {fmt(h)} | {fmt(d)} | {fmt(r) + 'x' if r else ''} | "
                   f"{f'{min(rr):.2f}-{max(rr):.2f}x' if len(rr) > 1 else ''} | {goal} | {met} |")
    if any("mirror_pull_many_MBps" in v for v in by.get("hubcache", {}).values()):
        out.append("")
        out.append("hubcache's hosted pulls against its own mirror hits of the same shape "
                   "(same process, same round, interleaved):")
        out.append("")
        out.append("| figure | unit | hosted | mirror hit | hosted / mirror | range | goal | met |")
        out.append("|---|---|---|---|---|---|---|---|")
        for fa, fb, unit, higher in MIRROR_PAIRS:
            rr = ratios("hubcache", fa, "hubcache", fb)
            if not rr:
                continue
            r = statistics.median(rr)
            ok = r >= 1.0 if higher else r <= 1.0
            op = ">=" if higher else "<="
            verdicts.append((fa + " (hosted / mirror)", ok, f"{r:.2f}x the mirror's hits (goal {op} 1x)"))
            out.append(f"| `{fa}` | {unit} | {fmt(med('hubcache', fa))} | {fmt(med('hubcache', fb))} | "
                       f"{r:.2f}x | {f'{min(rr):.2f}-{max(rr):.2f}x' if len(rr) > 1 else ''} | {op} 1x | "
                       f"{'yes' if ok else '**no**'} |")
        pp = [by["hubcache"][r]["pull_many_paired_x"] for r in rounds
              if "pull_many_paired_x" in by["hubcache"].get(r, {})]
        if pp:
            out.append("")
            out.append(f"`pull_many` paired (hosted / mirror MB/s of adjacent pulls, median per round): "
                       + ", ".join(f"{v:.2f}x" for v in pp))
        hits = [(by['hubcache'][r].get('mirror_pull_many_hits'), by['hubcache'][r].get('mirror_pull_1g_hits'))
                for r in rounds if r in by['hubcache']]
        out.append("")
        out.append("Mirror answers marked `X-Hubcache-Cache: hit` per round (many: of 52 x repeat; "
                   "1g: of repeat): " + ", ".join(f"{fmt(a)}/{fmt(b)}" for a, b in hits))
    errs = {t: sum(v.get("errors", 0) for v in by[t].values()) for t in by}
    out.append("")
    out.append(f"Goals met: {sum(1 for v in verdicts if v[1])} of {len(verdicts)}. "
               f"Failed target-rounds: {errs}.")
    for fig, ok, text in verdicts:
        if not ok:
            out.append(f"- not met: `{fig}` {text}")
    return "\n".join(out)


if __name__ == "__main__":
    main()
