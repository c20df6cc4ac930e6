#!/usr/bin/env python3
"""hubcache on S3 beside the CNCF registry on the same S3 gateway (issue 14).

    bench/s3.py --bin BUILD/hubcache [--rounds 3] [--state DIR] [--out RESULTS]
    bench/s3.py --report RESULTS            # the report of an earlier run again

Once per run, on loopback: one Ceph S3 gateway (tests/integration/ceph_rgw.py:
monitor, memstore OSD, radosgw; bucket `bench`), and an upstream: Debian's
`docker-registry` with filesystem storage holding two images pushed by this
script (deterministic content, docker schema 2):

  big3      3 x 10 MB layers + config
  many20    20 x 1 MB layers + config

Then one untimed pass (round 0) of everything below that checks every digest
(`--no-verify` skips it), then the timed rounds. Each round starts its servers
fresh on free loopback ports, each under its own bucket prefix (rootdirectory
/r<N>-hub, /r<N>-dist), stops them by pid, and alternates the order of the
targets (odd rounds direct, fs, hub, dist; even rounds the reverse):

  cold     per image: direct pulls from the upstream (median of 3, the
           reference of the goal); a pull through hubcache on
           its filesystem only (`fs`, no bucket: what the bucket adds); a pull
           through hubcache on S3 (REGISTRY_STORAGE=s3, empty L1, empty prefix; a
           mirror of the upstream); a pull through the CNCF registry
           (`docker-registry` 2.8, `storage: s3` on the same gateway,
           `proxy: remoteurl` the upstream, `redirect: disable`). After each
           bucket-backed pull, untimed, the bucket is polled until it holds every
           object of the image (hubcache copies blobs as they arrive; 2.8's proxy
           fetches each blob a second time in the background to store it):
           `_settle_s`. The upstream's access log gives the requests and GET bytes
           of each pull, settle included; hubcache's access log the median time
           of its blob answers (`_blob_p50_ms`).
  l2       both restarted: hubcache with its L1 wiped, same prefix; the CNCF
           registry with its in-memory caches gone. Per image one pull each:
           hubcache's L2 hits (L1 empty, everything from the bucket) and the
           CNCF registry's S3 hits (its only storage is the bucket); and
           `bucket_get`, the same objects read straight from the bucket by this
           script (SigV4-signed GETs, 3 at a time, one connection each): a rough
           ceiling of what the gateway delivers here.
  l1       the same processes again, `--l1-repeat` pulls per image (median):
           hubcache's L1 hits, the CNCF registry's repeated S3 reads.
  hit16    16 clients (`--clients`), each its own process with 3 keep-alive
           connections, pull both images over and over for `--load-seconds`
           (warm caches: L1 hits) from: `node`, the hubcache above; `node_lb`,
           the same node behind HAProxy; `cluster`, three hubcache nodes on the
           same bucket prefix (fresh L1s, warmed through the balancer: from
           the bucket) behind HAProxy (deploy/cluster/haproxy.cfg, adapted to
           loopback as tests/integration/test_deploy.py does). MB/s = bytes of
           complete responses / wall time; CPU per GB of the servers and of the
           clients.

A pull: manifest by tag (Accept of a modern client), config and layers, 3 blobs
at a time, each on its own keep-alive connection (bench/push.py's pull_image).
Peak RSS: VmHWM, reset (/proc/PID/clear_refs 5) before each phase; for the
cluster the sum over its nodes. CPU: user + system seconds of the servers (and
of the load clients) in the phase; `gw_cpu_`: the gateway's daemons' (it runs
on the same cores).

Writes RESULTS/s3-r<N>.txt (`name value unit` lines, round 0 = the checking
pass) and RESULTS/s3-report.md: each figure's median over the rounds, the goals
as ratios (median of the per-round ratios, and their lowest-highest range):
hubcache L2 hits >= 2x the CNCF registry's S3 hits, cold pulls <= 1.1x direct,
upstream bytes of a cold pull 1.0x the image; the cluster's 16-client hit rate
beside one node's.

Python's standard library only; every loop is bounded. docker-registry gets
the environment without AWS_CA_BUNDLE: with it set, 2.8's S3 driver (which
installs its own HTTP transport for its User-Agent) refuses to start.
"""
import argparse
import collections
import concurrent.futures
import http.client
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import push  # noqa: E402
from bench_common import fmt, parse  # noqa: E402
from push import (ACCEPT, MB, MT_CONFIG, MT_LAYER, MT_MANIFEST, TIMEOUT, WORKERS,  # noqa: E402
                  Client, expect, free_ports, log, pull_image, push_blob, run_workers, sha)
import s3_mirror_cases  # noqa: E402  (bucket_keys)
from ceph_rgw import CephRgw  # noqa: E402
from balancer import haproxy_adapted  # noqa: E402

MiB = 1024 * 1024
BUCKET = "bench"
SHAPES = (("big3", 3, 10 * MB, 31), ("many20", 20, 1 * MB, 32))  # name, layers, size, seed
SETTLE_TIMEOUT = 60  # seconds for the bucket to hold a pulled image
DIRECT_REPEAT = 3  # direct pulls per image and round, the median is the reference
# As deploy/cluster/docker-compose.yaml sets on every node: all clients here come
# from 127.0.0.1 (or from the balancer), so the per-client limits are the total cap.
NODE_ENV = {"HUBCACHE_MAX_CONNECTIONS": "1000", "HUBCACHE_MAX_CONNECTIONS_PER_CLIENT": "1000",
            "HUBCACHE_MAX_REQUESTS_PER_CLIENT": "1000"}


# ---------------------------------------------------------------- content

class Shape:
    """An image of `layers` random layers of `size` bytes, a config, a schema-2 manifest."""

    def __init__(self, name, layers, size, seed):
        rnd = random.Random(seed)
        self.name, self.repo, self.tag = name, f"library/{name}", "1"
        self.layers = [rnd.randbytes(size) for _ in range(layers)]
        self.layer_digests = [sha(b) for b in self.layers]
        cfg = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
               "config": {"Env": [f"SHAPE={name}"]},
               "rootfs": {"type": "layers", "diff_ids": self.layer_digests}}
        self.config = json.dumps(cfg, sort_keys=True).encode()
        self.config_digest = sha(self.config)
        man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
               "config": {"mediaType": MT_CONFIG, "size": len(self.config),
                          "digest": self.config_digest},
               "layers": [{"mediaType": MT_LAYER, "size": len(b), "digest": d}
                          for b, d in zip(self.layers, self.layer_digests)]}
        self.manifest = json.dumps(man, indent=3).encode()
        self.manifest_digest = sha(self.manifest)
        self.blob_digests = [self.config_digest] + self.layer_digests
        self.total = sum(map(len, self.layers)) + len(self.config) + len(self.manifest)

    def push(self, base):
        blobs = list(zip(self.layers + [self.config], self.layer_digests + [self.config_digest]))
        run_workers(WORKERS, blobs, lambda c, b: push_blob(c, self.repo, b[0], b[1], len(b[0])),
                    lambda: Client(base))
        cl = Client(base)
        try:
            st, _, b = cl.request("PUT", f"/v2/{self.repo}/manifests/{self.tag}", body=self.manifest,
                                  headers={"Content-Type": MT_MANIFEST,
                                           "Content-Length": str(len(self.manifest))})
            expect(f"PUT manifest {self.repo}", st, (201,), b)
        finally:
            cl.close()

    def hub_keys(self, root):
        """Bucket keys (prefixes) hubcache writes for this image under rootdirectory `root`."""
        r = root.strip("/")
        hexes = [d.split(":", 1)[1] for d in self.blob_digests]
        m = self.manifest_digest.split(":", 1)[1]
        return ([f"{r}/cache/blobs/sha256/{h[:2]}/{h}" for h in hexes] +
                [f"{r}/cache/manifests/sha256/{m[:2]}/{m}",
                 f"{r}/cache/tags/{self.repo}/_tags/{self.tag}/"])

    def dist_keys(self, root):
        """The same for distribution 2.8: blob data, the repository's layer links, the tag."""
        r = root.strip("/") + "/docker/registry/v2"
        hexes = [d.split(":", 1)[1] for d in self.blob_digests]
        return ([f"{r}/blobs/sha256/{h[:2]}/{h}/data" for h in hexes] +
                [f"{r}/repositories/{self.repo}/_layers/sha256/{h}/link" for h in hexes] +
                [f"{r}/repositories/{self.repo}/_manifests/tags/{self.tag}/current/link"])


def wait_bucket(prefix, wanted, what):
    """Polls the bucket until every entry of `wanted` is a key or a key's prefix; seconds."""
    t = time.monotonic()
    deadline = t + SETTLE_TIMEOUT
    missing = wanted
    while time.monotonic() < deadline:
        keys = s3_mirror_cases.bucket_keys(prefix)
        missing = [w for w in wanted if not any(k.startswith(w) for k in keys)]
        if not missing:
            return time.monotonic() - t
        time.sleep(0.05)
    raise RuntimeError(f"{what}: the bucket lacks {len(missing)} objects after {SETTLE_TIMEOUT} s, "
                       f"e.g. {missing[0]}")


# ---------------------------------------------------------------- servers

def clean_env(extra):
    """This environment without REGISTRY_*, HUBCACHE_* and AWS_CA_BUNDLE, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REGISTRY_", "HUBCACHE_")) and k != "AWS_CA_BUNDLE"}
    env.update(extra)
    return env


class Upstream(push.Dist):
    """The upstream: push.Dist (filesystem, access log in server.log)."""

    def window(self):
        """The access log's size now: pass it to since()."""
        return os.path.getsize(self.log_path)

    @property
    def log_path(self):
        return os.path.join(self.dir, "server.log")

    def since(self, offset):
        """Requests in the access log after offset: (all, those of blobs and manifests,
        GET bytes of blobs and manifests). The rest are /v2/ pings (hubcache's /readyz
        asks the upstream's; 2.8's proxy pings before its requests)."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        n = content = nbytes = 0
        for m in re.finditer(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1" (\d+) (\d+)', text):
            n += 1
            if "/blobs/" in m[2] or "/manifests/" in m[2]:
                content += 1
                nbytes += int(m[4]) if m[1] == "GET" else 0
        return n, content, nbytes


class HubS3(push.Server):
    """hubcache serve on the bucket under `root` (REGISTRY_STORAGE_S3_*), a mirror of upstream."""

    def __init__(self, name, s3, root, upstream_url, binary, state, prefetch="auto"):
        super().__init__(name, "hubcache", free_ports(1)[0], state)
        self.bin, self.upstream = binary, upstream_url
        self.env = clean_env({
            "REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_BUCKET": BUCKET,
            "REGISTRY_STORAGE_S3_REGION": s3.region, "REGISTRY_STORAGE_S3_REGIONENDPOINT": s3.endpoint,
            "REGISTRY_STORAGE_S3_ACCESSKEY": s3.access_key,
            "REGISTRY_STORAGE_S3_SECRETKEY": s3.secret_key,
            "REGISTRY_STORAGE_S3_FORCEPATHSTYLE": "true", "REGISTRY_STORAGE_S3_SECURE": "false",
            "REGISTRY_STORAGE_S3_ROOTDIRECTORY": root, "HUBCACHE_PREFETCH": prefetch,
            **NODE_ENV})

    def command(self):
        return [self.bin, "serve", "--addr", f"127.0.0.1:{self.port}", "--upstream", self.upstream,
                "--root", self.root, "--access-log", os.path.join(self.dir, "access.log")]

    def stats(self):
        st, _, body = Client(self.url).request("GET", "/stats?repositories=0")
        expect(f"{self.name} /stats", st, (200,), body)
        return json.loads(body)


class DistS3(push.Server):
    """docker-registry 2.8: storage s3 on the same gateway under `root`, proxy of upstream."""

    def __init__(self, name, s3, root, upstream_url, binary, state):
        super().__init__(name, "dist", free_ports(1)[0], state)
        self.bin, self.s3, self.s3_root, self.upstream = binary, s3, root, upstream_url
        self.env = clean_env({})

    def command(self):
        # 2.8's s3-aws driver addresses the bucket by path whenever regionendpoint is
        # set (it has no forcepathstyle setting), and checks the region's name only
        # without one.
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  s3:
    accesskey: {self.s3.access_key}
    secretkey: {self.s3.secret_key}
    region: {self.s3.region}
    regionendpoint: {self.s3.endpoint}
    bucket: {BUCKET}
    rootdirectory: {self.s3_root}
    secure: false
    v4auth: true
  redirect:
    disable: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{self.port}
  secret: bench-s3-{os.urandom(6).hex()}
health:
  storagedriver:
    enabled: false
proxy:
  remoteurl: {self.upstream}
""")
        return [self.bin, "serve", cfg]


class Balancer(push.Server):
    """HAProxy with deploy/cluster/haproxy.cfg, its ports and server lines on loopback;
    `nodes` follow the file's server lines, None leaves a line out."""

    def __init__(self, name, nodes, state):
        port, self.monitor_port = free_ports(2)
        super().__init__(name, "haproxy", port, state)
        self.nodes = nodes

    def command(self):
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(os.path.join(REPO, "deploy", "cluster", "haproxy.cfg")) as f:
            text = haproxy_adapted(f.read(), self.port, self.monitor_port,
                                   [n and n.port for n in self.nodes])
        with open(cfg, "w") as f:
            f.write(text)
        return ["haproxy", "-db", "-f", cfg]


class Running:
    """Every server started, so that a failure or a signal stops them all (by pid)."""

    def __init__(self):
        self.servers = []

    def start(self, server):
        self.servers.append(server)
        server.start()
        return server

    def stop(self, server, wipe=True):
        server.stop(wipe=wipe)
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self):
        for s in reversed(self.servers):
            s.stop(wipe=True)
        self.servers.clear()


# ---------------------------------------------------------------- measuring

def cpu_of(servers):
    v = [s.cpu_s() for s in servers]
    return None if any(x is None for x in v) else sum(v)


def pid_cpu_s(pid):
    """user + system CPU seconds of a process so far, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


GATEWAY_PIDS = []  # the S3 gateway's daemons (mon, osd, rgw): their CPU in every phase


class Measure:
    """Around one phase: wall seconds, the servers' summed VmHWM (reset before) and CPU,
    and the S3 gateway's CPU (gw_cpu)."""

    def __init__(self, servers):
        self.servers = servers

    def _gw(self):
        v = [pid_cpu_s(p) for p in GATEWAY_PIDS]
        return sum(x for x in v if x is not None)

    def __enter__(self):
        for s in self.servers:
            s.reset_hwm()
        self.cpu0 = cpu_of(self.servers)
        self.gw0 = self._gw()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        cpu1 = cpu_of(self.servers)
        self.cpu = cpu1 - self.cpu0 if cpu1 is not None and self.cpu0 is not None else None
        self.gw_cpu = self._gw() - self.gw0
        kb = [s.status_kb("VmHWM") for s in self.servers]
        self.hwm_mib = sum(kb) / 1024 if all(kb) else None


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def blob_durations_ms(server, shape, offset):
    """duration_ms of the blob GETs of `shape` in hubcache's access log after `offset`."""
    with open(os.path.join(server.dir, "access.log"), "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return [float(m[1]) for m in re.finditer(
        rf"method=GET path=/v2/{re.escape(shape.repo)}/blobs/\S+ status=200 \S+ duration_ms=([0-9.]+)",
        text)]


def checked_pull(base, shape, verify, what):
    n, caches = pull_image(base, shape.repo, shape.tag, verify=verify)
    if n != shape.total:
        raise RuntimeError(f"{what}: {n} bytes, want {shape.total}")
    return caches


def bucket_pull(s3, shape, root, verify):
    """The image read straight from the bucket, as a pull reads it (hubcache's objects under
    root: the manifest, then config and layers 3 at a time), each GET SigV4-signed on its
    own connection: the gateway's own rate, what any registry that serves S3 objects
    through itself gets at most. Returns the bytes and each blob GET's milliseconds."""
    keys = shape.hub_keys(root)
    wanted = [(keys[-2], shape.manifest_digest, len(shape.manifest))] + [
        (k, d, n) for k, d, n in zip(keys[:-2], shape.blob_digests,
                                     [len(shape.config)] + list(map(len, shape.layers)))]

    ms = []

    def get(item):
        key, digest, size = item
        t = time.monotonic()
        r = s3.request("GET", f"/{BUCKET}/{key}", timeout=TIMEOUT)
        expect(f"bucket GET {key}", r.status, (200,), r.body)
        if len(r.body) != size or (verify and sha(r.body) != digest):
            raise RuntimeError(f"bucket GET {key}: {len(r.body)} bytes or content not {digest}")
        ms.append((time.monotonic() - t) * 1000)
        return size

    total = get(wanted[0])
    ms.clear()
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        total += sum(pool.map(get, wanted[1:]))
    return total, ms


# ---------------------------------------------------------------- the 16-client load

def _load_client(idx, url, images, seconds, barrier, results):
    """One client process: WORKERS keep-alive connections; pulls `images` in turn until
    `seconds` after the start barrier; puts (t0, t1, bytes, pulls, hits, answers, error)."""
    conns = [Client(url) for _ in range(WORKERS)]
    bufs = [bytearray(MiB) for _ in range(WORKERS)]
    lock = threading.Lock()
    nbytes = pulls = hits = answers = 0
    error = ""
    t0 = t1 = time.monotonic()
    try:
        barrier.wait(60)
        t0 = time.monotonic()
        deadline = t0 + seconds
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            for i in range(1_000_000):  # bounded by the deadline long before
                if time.monotonic() >= deadline:
                    break
                repo, tag = images[(idx + i) % len(images)]
                st, h, man = conns[0].request("GET", f"/v2/{repo}/manifests/{tag}",
                                              headers={"Accept": ACCEPT})
                expect(f"GET manifest {repo}:{tag}", st, (200,), man)
                nbytes += len(man)
                answers += 1
                hits += h.get("X-Hubcache-Cache") == "hit"
                m = json.loads(man)
                todo = collections.deque([m["config"]] + m["layers"])

                def worker(k):
                    got = [0, 0, 0]  # bytes, answers, hits
                    for _ in range(len(todo)):
                        if time.monotonic() >= deadline:
                            break
                        with lock:
                            if not todo:
                                break
                            desc = todo.popleft()
                        st, hh, n = conns[k].request("GET", f"/v2/{repo}/blobs/{desc['digest']}",
                                                     sink=bufs[k])
                        expect(f"GET blob {repo} {desc['digest'][:19]}", st, (200,))
                        if n != desc["size"]:
                            raise RuntimeError(f"blob {desc['digest']}: {n} bytes, want {desc['size']}")
                        got[0] += n
                        got[1] += 1
                        got[2] += hh.get("X-Hubcache-Cache") == "hit"
                    return got

                done = [f.result() for f in [pool.submit(worker, k) for k in range(WORKERS)]]
                for b, a, hh in done:
                    nbytes, answers, hits = nbytes + b, answers + a, hits + hh
                if not todo:
                    pulls += 1
        t1 = time.monotonic()
    except Exception as e:  # noqa: BLE001 - reported to the parent
        t1 = time.monotonic()
        error = f"{type(e).__name__}: {e}"
    finally:
        for c in conns:
            c.close()
    results.put((idx, t0, t1, nbytes, pulls, hits, answers, error))


def load(url, shapes, clients, seconds, servers):
    """`clients` processes pull for `seconds`: dict of figures (MB/s over the wall time
    from the first start to the last end, pulls, errors, hit share, CPU, VmHWM)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    results = ctx.Queue()
    images = [(s.repo, s.tag) for s in shapes]
    procs = [ctx.Process(target=_load_client, args=(i, url, images, seconds, barrier, results))
             for i in range(clients)]
    for p in procs:
        p.start()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = []
    try:
        with Measure(servers) as m:
            barrier.wait(60)
            for _ in procs:
                out.append(results.get(timeout=seconds + TIMEOUT))
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join(10)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    errors = [r[7] for r in out if r[7]]
    wall = max(r[2] for r in out) - min(r[1] for r in out)
    nbytes = sum(r[3] for r in out)
    answers = sum(r[6] for r in out)
    return {"MBps": nbytes / MB / wall, "GB": nbytes / 1e9, "wall_s": wall,
            "pulls": sum(r[4] for r in out),
            "errors": len(errors), "first_error": errors[0] if errors else "",
            "hit_share": sum(r[5] for r in out) / answers if answers else 0.0,
            "server_cpu_s": m.cpu, "client_cpu_s": (ru1.ru_utime + ru1.ru_stime) -
            (ru0.ru_utime + ru0.ru_stime), "rss_MiB": m.hwm_mib}


# ---------------------------------------------------------------- one round

def run_round(rnd, ctx, emit):
    """All phases of round rnd (0: the untimed pass that checks every digest)."""
    args, s3, up, shapes, running = ctx["args"], ctx["s3"], ctx["up"], ctx["shapes"], ctx["running"]
    verify = rnd == 0
    hub_root, dist_root = f"/r{rnd}-hub", f"/r{rnd}-dist"
    state = os.path.join(args.state, f"r{rnd}")

    def hub(name, prefetch="auto"):
        return HubS3(name, s3, hub_root, up.url, args.bin, state, prefetch)

    def dist(name):
        return DistS3(name, s3, dist_root, up.url, args.dist_bin, state)

    def ordered(targets, flip=False):
        return targets if (rnd % 2 == 1 or rnd == 0) != flip else targets[::-1]

    # One node on its own: prefetch on, as the README says for a single node on S3
    # (the cluster's nodes keep auto: off).
    h = running.start(hub("hub", prefetch="true"))
    d = running.start(dist("dist"))
    # hubcache on its filesystem only (no bucket): what the bucket adds to a cold pull
    fs = push.Hubcache("fs", "hubcache", free_ports(1)[0], state)
    fs.bin, fs.upstream, fs.hosted, fs.extra = args.bin, up.url, "", []
    fs.env = clean_env({})
    running.start(fs)

    # -- cold: direct, hubcache without and with the bucket, the CNCF registry
    totals = collections.defaultdict(float)  # (target, what) -> summed over the images
    s3_before = h.stats()["s3"]
    for shape in shapes:
        for target in ordered(["direct", "fs", "hub", "dist"]):
            server = {"hub": h, "dist": d, "fs": fs}.get(target)
            url = server.url if server else up.url
            mark = up.window()
            offset = log_size(os.path.join(server.dir, "access.log")) if server else 0
            walls = []
            for _ in range(1 if server else DIRECT_REPEAT):  # a cold pull happens once
                with Measure([server] if server else []) as m:
                    checked_pull(url, shape, verify, f"{target} cold {shape.name}")
                walls.append(m.wall)
            key = f"{target}_{'pull' if target == 'direct' else 'cold'}_{shape.name}"
            emit(f"{key}_s", statistics.median(walls), "s" + (" (median)" if len(walls) > 1 else ""))
            emit(f"{key}_MBps", shape.total / MB / statistics.median(walls), "MB/s")
            emit(f"gw_cpu_{key}_s", m.gw_cpu, "s (S3 gateway CPU during the pull)")
            t = time.monotonic()
            if target in ("hub", "dist"):
                if target == "hub":
                    settle = wait_bucket(hub_root.strip("/") + "/cache/", shape.hub_keys(hub_root),
                                         f"hub cold {shape.name}")
                else:
                    settle = wait_bucket(dist_root.strip("/") + "/docker/", shape.dist_keys(dist_root),
                                         f"dist cold {shape.name}")
                emit(f"{key}_settle_s", settle, "s (after the pull, until the bucket held it all)")
            time.sleep(max(0.0, 0.2 - (time.monotonic() - t)) if target in ("hub", "dist") else 0.2)
            if target in ("hub", "fs"):  # the logs' last lines are in
                emit(f"{key}_blob_p50_ms", statistics.median(blob_durations_ms(server, shape, offset)),
                     "ms (median of its blob GETs, hubcache's access log)")
            if server:
                totals[(target, "cpu")] += m.cpu or 0
                totals[(target, "hwm")] = max(totals[(target, "hwm")], m.hwm_mib or 0)
            n, _, nbytes = up.since(mark)
            emit(f"{key}_up_requests", n / len(walls), "n")
            emit(f"{key}_up_bytes", nbytes // len(walls), "B")
            emit(f"{key}_up_bytes_x", nbytes / len(walls) / shape.total, "x image")
    for target in ("fs", "hub", "dist"):
        emit(f"cpu_{target}_cold_s", totals[(target, "cpu")], "s (server CPU, both images)")
        emit(f"rss_{target}_cold_MiB", totals[(target, "hwm")], "MiB")
    hs = h.stats()
    emit("hub_cold_stats_fetched_upstream_x", hs["bytes"]["fetched_upstream"] /
         sum(s.total for s in shapes), "x images (hubcache /stats)")
    emit("hub_cold_s3_requests", hs["s3"]["requests"] - s3_before["requests"],
         "n (hubcache's requests to the bucket, both images)")
    emit("hub_cold_s3_p50_ms", hs["s3"]["latency_ms"]["p50"], "ms (since start)")
    emit("hub_cold_s3_p99_ms", hs["s3"]["latency_ms"]["p99"], "ms")
    running.stop(fs)

    # -- l2: hubcache with an empty L1 on the same prefix; the CNCF registry restarted;
    # and the same objects read straight from the bucket
    running.stop(h)
    running.stop(d, wipe=False)
    h = running.start(hub("hub-l2"))
    d = running.start(dist("dist-s3hit"))
    totals.clear()
    for shape in shapes:
        for target in ordered(["hub", "dist", "bucket"]):
            server = {"hub": h, "dist": d}.get(target)
            mark = up.window()
            s3_before = h.stats()["s3"] if target == "hub" else None
            offset = log_size(os.path.join(h.dir, "access.log"))
            with Measure([server] if server else []) as m:
                if server:
                    caches = checked_pull(server.url, shape, verify, f"{target} l2 {shape.name}")
                else:
                    _, object_ms = bucket_pull(s3, shape, hub_root, verify)
            key = {"hub": "hub_l2", "dist": "dist_s3hit", "bucket": "bucket_get"}[target]
            key = f"{key}_{shape.name}"
            emit(f"{key}_s", m.wall, "s")
            emit(f"{key}_MBps", shape.total / MB / m.wall, "MB/s")
            emit(f"gw_cpu_{key}_s", m.gw_cpu, "s (S3 gateway CPU)")
            if not server:
                emit(f"{key}_object_p50_ms", statistics.median(object_ms),
                     "ms (median of the blob GETs straight from the bucket)")
                continue
            time.sleep(0.2)
            n, content, _ = up.since(mark)
            emit(f"{key}_up_requests", n, "n")
            emit(f"{key}_up_content_requests", content, "n (blobs, manifests)")
            if target == "hub":
                s3_after = h.stats()["s3"]
                emit(f"{key}_s3_blob_hits", s3_after["blob_hits"] - s3_before["blob_hits"],
                     f"of {len(shape.blob_digests)} blobs")
                emit(f"{key}_s3_requests", s3_after["requests"] - s3_before["requests"], "n")
                emit(f"{key}_blob_p50_ms", statistics.median(blob_durations_ms(h, shape, offset)),
                     "ms (median of its blob GETs, hubcache's access log)")
                # Bucket reads answer "hit" too: the bucket's count tells L1 was empty.
                from_bucket = s3_after["blob_hits"] - s3_before["blob_hits"]
                if from_bucket != len(shape.blob_digests):
                    raise RuntimeError(f"hub l2 {shape.name}: {from_bucket} of "
                                       f"{len(shape.blob_digests)} blobs from the bucket "
                                       f"({dict(caches)}): L1 was not empty")
            totals[(target, "cpu")] += m.cpu or 0
            totals[(target, "hwm")] = max(totals[(target, "hwm")], m.hwm_mib or 0)
    emit("cpu_hub_l2_s", totals[("hub", "cpu")], "s")
    emit("cpu_dist_s3hit_s", totals[("dist", "cpu")], "s")
    emit("rss_hub_l2_MiB", totals[("hub", "hwm")], "MiB")
    emit("rss_dist_s3hit_MiB", totals[("dist", "hwm")], "MiB")

    # -- l1: the same processes again
    walls = collections.defaultdict(list)
    totals.clear()
    for i in range(args.l1_repeat):
        for shape in shapes:
            for target in ordered(["hub", "dist"], flip=i % 2 == 1):
                server = h if target == "hub" else d
                with Measure([server]) as m:
                    caches = checked_pull(server.url, shape, verify and i == 0,
                                          f"{target} l1 {shape.name}")
                if target == "hub" and caches.get("hit", 0) != len(shape.blob_digests) + 1:
                    raise RuntimeError(f"hub l1 {shape.name}: {dict(caches)}: not all L1 hits")
                walls[(target, shape.name)].append(m.wall)
                totals[(target, "hwm")] = max(totals[(target, "hwm")], m.hwm_mib or 0)
    for shape in shapes:
        for target, key in (("hub", f"hub_l1_{shape.name}"), ("dist", f"dist_repeat_{shape.name}")):
            w = statistics.median(walls[(target, shape.name)])
            emit(f"{key}_s", w, "s")
            emit(f"{key}_MBps", shape.total / MB / w, "MB/s")
    emit("rss_hub_l1_MiB", totals[("hub", "hwm")], "MiB")
    emit("rss_dist_repeat_MiB", totals[("dist", "hwm")], "MiB")
    running.stop(d, wipe=False)

    # -- hit16: one node, one node behind HAProxy, three nodes behind HAProxy
    seconds = args.load_seconds if rnd else min(1.0, args.load_seconds)
    nodes = [running.start(hub(f"node{i + 1}")) for i in range(3)]
    lb3 = running.start(Balancer("haproxy-3", nodes, state))
    lb1 = running.start(Balancer("haproxy-1", [h, None, None], state))
    mark = up.window()
    s3_before = sum(n.stats()["s3"]["blob_hits"] for n in nodes)
    for i in range(2):  # the first from the bucket, the second all L1 hits
        for shape in shapes:
            caches = checked_pull(lb3.url, shape, verify, f"cluster warm {shape.name}")
            if i == 1 and caches.get("hit", 0) != len(shape.blob_digests) + 1:
                raise RuntimeError(f"cluster warm {shape.name}: {dict(caches)}: not all L1 hits")
    time.sleep(0.2)
    emit("cluster_warm_up_requests", up.since(mark)[1],
         "n (upstream requests for blobs or manifests while warming)")
    emit("cluster_warm_s3_blob_hits", sum(n.stats()["s3"]["blob_hits"] for n in nodes) - s3_before,
         f"of {sum(len(s.blob_digests) for s in shapes)} blobs")
    targets = [("node", h.url, [h]), ("node_lb", lb1.url, [h, lb1]), ("cluster", lb3.url, nodes + [lb3])]
    for name, url, servers in ordered(targets):
        r = load(url, shapes, args.clients, seconds, servers)
        log(f"round {rnd}: hit16 {name}: {r['MBps']:.0f} MB/s, {r['pulls']} pulls, "
            f"{r['errors']} errors {r['first_error']}")
        emit(f"hit16_{name}_MBps", r["MBps"], "MB/s")
        emit(f"hit16_{name}_pulls", r["pulls"], "n")
        emit(f"hit16_{name}_errors", r["errors"], "n")
        emit(f"hit16_{name}_hit_share", r["hit_share"], "of answers X-Hubcache-Cache: hit")
        emit(f"cpu_hit16_{name}_s", r["server_cpu_s"] or 0, "s (hubcache + haproxy)")
        emit(f"client_cpu_hit16_{name}_s", r["client_cpu_s"], "s (the 16 client processes)")
        if r["GB"]:
            emit(f"cpu_hit16_{name}_s_per_GB", (r["server_cpu_s"] or 0) / r["GB"],
                 "s (hubcache + haproxy CPU per GB served)")
            emit(f"client_cpu_hit16_{name}_s_per_GB", r["client_cpu_s"] / r["GB"], "s")
        emit(f"rss_hit16_{name}_MiB", r["rss_MiB"] or 0, "MiB (hubcache + haproxy)")
        if r["errors"]:
            raise RuntimeError(f"hit16 {name}: {r['errors']} clients failed: {r['first_error']}")
    for s in [lb1, lb3] + nodes + [h]:
        running.stop(s)
    shutil.rmtree(state, ignore_errors=True)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="", help="hubcache binary")
    ap.add_argument("--dist-bin", default="/usr/bin/docker-registry")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--l1-repeat", type=int, default=3, help="L1-hit pulls per image and round (median)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--load-seconds", type=float, default=5.0)
    ap.add_argument("--no-verify", action="store_true", help="skip the untimed checking pass (round 0)")
    ap.add_argument("--state", default="/tmp/bench-s3")
    ap.add_argument("--out", default="")
    ap.add_argument("--report", metavar="RESULTS", help="only (re)write the report of RESULTS")
    args = ap.parse_args()

    if args.report:
        print(report(args.report))
        return
    if not args.bin:
        sys.exit("s3.py: --bin is required")
    for tool in ("haproxy", args.dist_bin, args.bin):
        if not shutil.which(tool):
            sys.exit(f"s3.py: {tool} not found")
    os.makedirs(args.state, exist_ok=True)
    out = args.out or os.path.join(args.state, "results", time.strftime("s3-%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    log(f"results in {out}")

    stopping = []

    def on_signal(sig, _frame):
        stopping.append(sig)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    running = Running()
    s3 = CephRgw(args.state, bucket=BUCKET)
    try:
        log("starting the Ceph S3 gateway (~20 s)")
        s3.start()
        s3_mirror_cases.setup(s3)
        GATEWAY_PIDS[:] = s3.pids().values()
        log(f"gateway {s3.endpoint}, bucket {BUCKET}")
        up = Upstream("upstream", "dist", free_ports(1)[0], args.state)
        up.bin = args.dist_bin
        running.start(up)
        shapes = [Shape(*s) for s in SHAPES]
        for shape in shapes:
            shape.push(up.url)
        log("upstream " + up.url + ": " + ", ".join(f"{s.repo}:{s.tag} {s.total / MB:.1f} MB"
                                                    for s in shapes))
        versions = [subprocess.run([args.dist_bin, "--version"], capture_output=True,
                                   text=True).stdout.strip(),
                    subprocess.run(["haproxy", "-v"], capture_output=True,
                                   text=True).stdout.splitlines()[0],
                    subprocess.run(["radosgw", "--version"], capture_output=True,
                                   text=True).stdout.strip()]
        head = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        versions.append(f"hubcache {os.path.realpath(args.bin)} (checkout at {head or '?'})")
        with open(os.path.join(out, "s3-info.txt"), "w") as f:
            f.write(f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\nrounds {args.rounds}\n"
                    f"clients {args.clients}\nload_seconds {args.load_seconds}\n"
                    f"l1_repeat {args.l1_repeat}\n"
                    + "".join(f"version {v}\n" for v in versions)
                    + f"load_start {open('/proc/loadavg').read().strip()}\n")
        ctx = {"args": args, "s3": s3, "up": up, "shapes": shapes, "running": running}
        for rnd in range(0 if not args.no_verify else 1, args.rounds + 1):
            lines = []

            def emit(k, v, unit):
                v = f"{v:.4f}" if isinstance(v, float) else str(v)
                lines.append(f"{k:36s} {v} {unit}")

            t0 = time.monotonic()
            log(f"round {rnd}" + (": untimed, every digest checked" if rnd == 0 else "")
                + f" (load {open('/proc/loadavg').read().split()[0]})")
            error = ""
            try:
                run_round(rnd, ctx, emit)
            except (RuntimeError, OSError, http.client.HTTPException, ValueError) as e:
                error = str(e)
                log(f"round {rnd} failed: {e}")
            for s in list(running.servers):
                if s is not up:
                    running.stop(s)
            emit("errors", 1 if error else 0, "n")
            emit("round_wall_s", time.monotonic() - t0, "s")
            with open(os.path.join(out, f"s3-r{rnd}.txt"), "w") as f:
                f.write(f"# round {rnd}{' (checking pass)' if rnd == 0 else ''}\n"
                        + (f"# error: {error}\n" if error else "") + "\n".join(lines) + "\n")
            if error and rnd == 0:
                raise RuntimeError(f"the checking pass failed: {error}")
        with open(os.path.join(out, "s3-info.txt"), "a") as f:
            f.write(f"load_end {open('/proc/loadavg').read().strip()}\n"
                    f"run_wall_s {time.monotonic() - started:.0f}\n")
    except KeyboardInterrupt:
        log("interrupted")
    except (RuntimeError, OSError, http.client.HTTPException, ValueError) as e:
        log(f"stopped: {e}")
        stopping.append(e)
    finally:
        running.stop_all()
        s3.stop()
    text = report(out)
    with open(os.path.join(out, "s3-report.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"report: {out}/s3-report.md ({time.monotonic() - started:.0f} s)")
    if stopping:
        sys.exit(1)


# ---------------------------------------------------------------- report

NAMES = [s[0] for s in SHAPES]
# (label, numerator figure, denominator figure or None, goal op, goal value)
GOALS = ([(f"L2 hits / CNCF S3 hits, {n} (MB/s)", f"hub_l2_{n}_MBps", f"dist_s3hit_{n}_MBps", ">=", 2.0)
          for n in NAMES] +
         [(f"cold pull / direct, {n} (time)", f"hub_cold_{n}_s", f"direct_pull_{n}_s", "<=", 1.1)
          for n in NAMES] +
         [(f"upstream bytes of a cold pull / image, {n}", f"hub_cold_{n}_up_bytes_x", None, "==", 1.0)
          for n in NAMES] +
         [("cluster (3 nodes + HAProxy) / one node, 16 clients (MB/s)", "hit16_cluster_MBps",
           "hit16_node_MBps", "", None)])
CONTEXT = ([(f"hubcache without S3 cold pull / direct, {n} (time)", f"fs_cold_{n}_s", f"direct_pull_{n}_s")
            for n in NAMES] +
           [(f"hubcache on S3 / without, cold pull, {n} (time)", f"hub_cold_{n}_s", f"fs_cold_{n}_s")
            for n in NAMES] +
           [(f"CNCF cold pull / direct, {n} (time)", f"dist_cold_{n}_s", f"direct_pull_{n}_s")
            for n in NAMES] +
           [(f"CNCF upstream bytes of a cold pull / image, {n}", f"dist_cold_{n}_up_bytes_x", None)
            for n in NAMES] +
           [(f"L2 hits / the bucket read straight, {n} (MB/s)", f"hub_l2_{n}_MBps", f"bucket_get_{n}_MBps")
            for n in NAMES] +
           [(f"CNCF S3 hits / the bucket read straight, {n} (MB/s)", f"dist_s3hit_{n}_MBps",
             f"bucket_get_{n}_MBps") for n in NAMES] +
           [(f"L1 hits / L2 hits, {n} (MB/s)", f"hub_l1_{n}_MBps", f"hub_l2_{n}_MBps") for n in NAMES] +
           [(f"L1 hits / CNCF repeated S3 reads, {n} (MB/s)", f"hub_l1_{n}_MBps",
             f"dist_repeat_{n}_MBps") for n in NAMES] +
           [("one node behind HAProxy / one node, 16 clients (MB/s)", "hit16_node_lb_MBps",
             "hit16_node_MBps"),
            ("cluster / one node behind HAProxy, 16 clients (MB/s)", "hit16_cluster_MBps",
             "hit16_node_lb_MBps")])
FIGURES = []  # (figure, unit): the table of medians
for n in NAMES:
    FIGURES += [(f"direct_pull_{n}_s", "s"), (f"fs_cold_{n}_s", "s"), (f"hub_cold_{n}_s", "s"),
                (f"dist_cold_{n}_s", "s"),
                (f"hub_cold_{n}_settle_s", "s"), (f"dist_cold_{n}_settle_s", "s"),
                (f"fs_cold_{n}_blob_p50_ms", "ms"), (f"hub_cold_{n}_blob_p50_ms", "ms"),
                (f"gw_cpu_hub_cold_{n}_s", "s"), (f"gw_cpu_dist_cold_{n}_s", "s"),
                (f"hub_cold_{n}_up_requests", "n"), (f"dist_cold_{n}_up_requests", "n"),
                (f"hub_cold_{n}_up_bytes_x", "x"), (f"dist_cold_{n}_up_bytes_x", "x"),
                (f"hub_l2_{n}_MBps", "MB/s"), (f"dist_s3hit_{n}_MBps", "MB/s"),
                (f"bucket_get_{n}_MBps", "MB/s"),
                (f"hub_l2_{n}_blob_p50_ms", "ms"), (f"bucket_get_{n}_object_p50_ms", "ms"),
                (f"gw_cpu_hub_l2_{n}_s", "s"), (f"gw_cpu_dist_s3hit_{n}_s", "s"),
                (f"gw_cpu_bucket_get_{n}_s", "s"),
                (f"hub_l2_{n}_up_content_requests", "n"), (f"dist_s3hit_{n}_up_content_requests", "n"),
                (f"hub_l2_{n}_s3_blob_hits", "n"), (f"hub_l2_{n}_s3_requests", "n"),
                (f"hub_l1_{n}_MBps", "MB/s"), (f"dist_repeat_{n}_MBps", "MB/s")]
FIGURES += [("hub_cold_s3_requests", "n"), ("hub_cold_s3_p50_ms", "ms"), ("hub_cold_s3_p99_ms", "ms"),
            ("hit16_node_MBps", "MB/s"), ("hit16_node_lb_MBps", "MB/s"), ("hit16_cluster_MBps", "MB/s"),
            ("hit16_node_hit_share", ""), ("hit16_cluster_hit_share", ""),
            ("cpu_hit16_node_s_per_GB", "s/GB"), ("cpu_hit16_node_lb_s_per_GB", "s/GB"),
            ("cpu_hit16_cluster_s_per_GB", "s/GB"), ("client_cpu_hit16_node_s_per_GB", "s/GB"),
            ("client_cpu_hit16_node_lb_s_per_GB", "s/GB"),
            ("client_cpu_hit16_cluster_s_per_GB", "s/GB"),
            ("cluster_warm_up_requests", "n"), ("cluster_warm_s3_blob_hits", "n"),
            ("cpu_fs_cold_s", "s"), ("cpu_hub_cold_s", "s"), ("cpu_dist_cold_s", "s"),
            ("cpu_hub_l2_s", "s"), ("cpu_dist_s3hit_s", "s"),
            ("rss_fs_cold_MiB", "MiB"), ("rss_hub_cold_MiB", "MiB"), ("rss_dist_cold_MiB", "MiB"),
            ("rss_hub_l2_MiB", "MiB"), ("rss_dist_s3hit_MiB", "MiB"), ("rss_hub_l1_MiB", "MiB"),
            ("rss_dist_repeat_MiB", "MiB"),
            ("rss_hit16_node_MiB", "MiB"), ("rss_hit16_node_lb_MiB", "MiB"),
            ("rss_hit16_cluster_MiB", "MiB"), ("round_wall_s", "s")]


def report(root):
    by = {}
    for name in os.listdir(root):
        m = re.fullmatch(r"s3-r(\d+)\.txt", name)
        if m and int(m[1]) > 0:
            by[int(m[1])] = parse(os.path.join(root, name))
    info = ""
    if os.path.exists(os.path.join(root, "s3-info.txt")):
        info = open(os.path.join(root, "s3-info.txt")).read()
    ok_rounds = sorted(r for r, v in by.items() if not v.get("errors"))
    checked = os.path.exists(os.path.join(root, "s3-r0.txt"))
    check_ok = checked and not parse(os.path.join(root, "s3-r0.txt")).get("errors")

    def values(fig):
        return [by[r][fig] for r in ok_rounds if fig in by[r]]

    def med(fig):
        v = values(fig)
        return statistics.median(v) if v else None

    def ratios(a, b):
        if b is None:
            return values(a)
        return [by[r][a] / by[r][b] for r in ok_rounds if a in by[r] and by[r].get(b)]

    def rng(rr):
        return f"{min(rr):.2f}-{max(rr):.2f}x" if len(rr) > 1 else ""

    out = [f"Rounds: {len(ok_rounds)} (of {len(by)}); each figure the median of the rounds; "
           "ratio = the median of the per-round ratios (range: lowest-highest round). "
           "MB = 10^6 bytes. Every digest checked in an untimed pass before the rounds: "
           + ("yes" if check_ok else "**failed**" if checked else "no (--no-verify)") + "."]
    for line in info.splitlines():
        if line.startswith(("version ", "load_", "run_wall_s", "clients", "load_seconds")):
            out.append(f"- {line}")
    out += ["", "| goal (issue 14) | hubcache | reference | ratio | range (rounds) | goal | met |",
            "|---|---|---|---|---|---|---|"]
    verdicts = []
    for label, a, b, op, goal in GOALS:
        rr = ratios(a, b)
        if not rr:
            out.append(f"| {label} | NA | | | | | |")
            continue
        r = statistics.median(rr)
        if op == ">=":
            ok = r >= goal
        elif op == "<=":
            ok = r <= goal
        elif op == "==":
            ok = all(abs(x - goal) < 0.001 for x in rr)
        else:
            ok = None
        straddle = op in (">=", "<=") and min(rr) < goal < max(rr)
        met = "" if ok is None else ("yes" if ok else "**no**") + (", range straddles" if straddle else "")
        if ok is not None:
            verdicts.append((label, ok, f"{r:.2f}x (goal {op} {goal:g})"))
        ref = fmt(med(b)) if b else ""
        out.append(f"| {label} | {fmt(med(a))} | {ref} | {r:.2f}x | {rng(rr)} | "
                   f"{f'{op} {goal:g}' if goal else 'report'} | {met} |")
    out += ["", "| beside (no goal) | figure | reference | ratio | range (rounds) |", "|---|---|---|---|---|"]
    for label, a, b in CONTEXT:
        rr = ratios(a, b)
        if rr:
            out.append(f"| {label} | {fmt(med(a))} | {fmt(med(b)) if b else ''} | "
                       f"{statistics.median(rr):.2f}x | {rng(rr)} |")
    out += ["", "| figure | unit | median | per round |", "|---|---|---|---|"]
    for fig, unit in FIGURES:
        v = values(fig)
        if v:
            out.append(f"| `{fig}` | {unit} | {fmt(statistics.median(v))} | "
                       f"{', '.join(fmt(x) for x in v)} |")
    failed = sorted(r for r, v in by.items() if v.get("errors"))
    out.append("")
    out.append(f"Goals met: {sum(1 for v in verdicts if v[1])} of {len(verdicts)}. "
               f"Failed rounds: {failed or 'none'}.")
    for label, ok, text in verdicts:
        if not ok:
            out.append(f"- not met: {label}: {text}")
    return "\n".join(out)


if __name__ == "__main__":
    main()
