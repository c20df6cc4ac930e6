"""Several hubcache nodes on one bucket behind HAProxy (issue 14, README "Scaling out").

Imported by test_s3.py, which starts one Ceph S3 gateway for the module and hands it over
with `setup(ceph)`. Everything here lives under the bucket's /cluster-tests root, apart
from the other tests' objects.

  Cluster         a real upstream (docker-registry + token server) holding library/multi:1
                  (OCI index: 3 manifests, 5 blobs) and library/docker2:1 (schema2, 3
                  blobs), which the nodes reach through a relay (s3_mirror_cases.Relay) that
                  the kill test slows down. Three nodes hubcache-1..3 (REGISTRY_STORAGE=s3,
                  each its own root = its own L1, --tag-freshness 1h, per-client limits
                  raised as the README has them behind a balancer) behind
                  deploy/cluster/haproxy.cfg on loopback (balancer.HaproxyBalancer, check
                  inter 500ms: a dead node is out within ~1 s).
    1 20 skopeo clients pull the cold multi through the balancer at once: all byte-
      identical to a direct pull; for the whole cluster the upstream sends each blob ONCE
      (GET 200 per digest), the tag and each platform's manifest once; the nodes started
      one fill per blob between them, on more than one node; each node copied into the
      bucket exactly the blobs it filled (no failure, none dropped), and the bucket holds
      every blob, every manifest and the tag record; a HEAD of each blob through the
      balancer is answered (X-Hubcache-Node) by the node that holds it in L1.
    2 a node that is not library/multi's home pulls it directly (not through the
      balancer): its L1 has neither the tag nor a manifest and lacks some blobs, which
      come from the bucket: zero upstream requests, zero token requests.
    3 20 clients pull the cold docker2 through the balancer, the upstream slowed to 1 MiB/s
      per connection; the first node seen with a fill in flight that has received 256 KiB
      is SIGKILLed (its clients hold part of a blob). Every client finishes (a failed copy
      is run again, at most twice), byte-identical; HAProxy marks the node DOWN within 3 s;
      the upstream sent the tag once (a node that took library/docker2 over read the tag
      record from the bucket), the blobs the dead node owned at most twice, the others
      once. A fresh node with an EMPTY L1 on the dead node's port rejoins (UP; HEADs of
      every blob through the balancer answered, some by it) and a pull of docker2 through
      it alone asks the upstream and the token server nothing.
  ~25 s on top of the gateway's start on the shared 2-core machine.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

import fixtures
import harness
import s3_mirror_cases
from balancer import HaproxyBalancer
from mirror import Mirror, wait_until
from s3_mirror_cases import Relay, bucket_keys, s3_env, skopeo_copy_all, stats
from upstream import started_upstream

IMAGES = ("multi", "docker2")
NODE_NAMES = ("hubcache-1", "hubcache-2", "hubcache-3")
CLIENTS = 20
ROOT = "cluster-tests"  # REGISTRY_STORAGE_S3_ROOTDIRECTORY, without its leading /
# What the README has nodes behind a balancer run with: the nodes see every client as
# the balancer's address, so their per-client limits are their total cap.
NODE_ENV = {"HUBCACHE_MAX_CONNECTIONS": "1000", "HUBCACHE_MAX_CONNECTIONS_PER_CLIENT": "1000",
            "HUBCACHE_MAX_REQUESTS_PER_CLIENT": "1000"}
SLOW_UPSTREAM_BYTES_S = 1 << 20  # the kill test: a 2 MiB layer takes ~2 s to fill


def setup(ceph):
    s3_mirror_cases.setup(ceph)  # s3_env, bucket_keys and stats read the gateway there


def bucket_key(kind, digest):
    hexd = digest.split(":", 1)[1]
    return f"{ROOT}/cache/{kind}/sha256/{hexd[:2]}/{hexd}"


class Pulls:
    """`skopeo copy --all` of one image by many clients at once, each into its own dir
    and with its own log; a copy that fails is started again up to `retries` times.
    Every process is ended by PID by the deadline."""

    def __init__(self, workdir, host, image, dests, retries):
        env, policy = harness.skopeo_env(workdir)
        self.env = env
        self.argv = ["skopeo", *policy, "copy", "--all", "--src-tls-verify=false",
                     "--src-no-creds", f"docker://{host}/library/{image}:1"]
        self.retries = retries
        self.clients = [{"dest": d, "attempts": 0, "proc": None, "errors": [], "ok": False}
                        for d in dests]

    def _launch(self, c):
        shutil.rmtree(c["dest"], ignore_errors=True)
        c["attempts"] += 1
        c["log"] = f"{c['dest']}.{c['attempts']}.log"
        with open(c["log"], "wb") as log:
            c["proc"] = subprocess.Popen(self.argv + [f"dir:{c['dest']}"], stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL, env=self.env)

    def run(self, deadline_s=120, on_tick=None):
        """Runs every client to the end; on_tick() is called about every 20 ms meanwhile."""
        deadline = time.monotonic() + deadline_s
        try:
            for c in self.clients:
                self._launch(c)
            while any(c["proc"] for c in self.clients):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(self.running())} clients still running after "
                                       f"{deadline_s}s")
                for c in self.clients:
                    rc = c["proc"].poll() if c["proc"] else None
                    if rc is None:
                        continue
                    c["proc"] = None
                    if rc == 0:
                        c["ok"] = True
                        continue
                    with open(c["log"], errors="replace") as f:
                        c["errors"].append(f"exit {rc}: {f.read()[-1500:]}")
                    if c["attempts"] <= self.retries:
                        self._launch(c)
                if on_tick:
                    on_tick()
                time.sleep(0.02)
        finally:
            for c in self.running():
                c["proc"].kill()
                c["proc"].wait(timeout=10)
                c["proc"] = None
        return self.clients

    def running(self):
        return [c for c in self.clients if c["proc"] is not None]


class Cluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("haproxy") is None:
            raise RuntimeError("haproxy not installed (scripts/install-deps.sh all)")
        cls.work, cls.up = started_upstream("s3-cluster", cls.addClassCleanup)
        cls.images = fixtures.push_described(cls.up, cls.work, IMAGES)
        for name in IMAGES:
            skopeo_copy_all(cls.work, cls.up.host, name, cls.out("direct", name))
        # The nodes' way to the upstream; the kill test slows it down.
        cls.relay = Relay(cls.up.port)
        cls.addClassCleanup(cls.relay.close)
        cls.nodes = [cls.start_node(name) for name in NODE_NAMES]
        cls.lb = HaproxyBalancer(cls.work, cls.nodes, check_inter="500ms")
        cls.addClassCleanup(cls.lb.stop)
        cls.lb.start()
        cls.done = set()

    @classmethod
    def start_node(cls, name, port=None):
        """A node with an empty L1 of its own (a fresh root), on `port` when given."""
        d = os.path.join(cls.work, "nodes", f"{name}-{time.monotonic_ns()}")
        os.makedirs(d)
        env = dict(s3_env(root="/" + ROOT), **NODE_ENV)
        m = Mirror(d, f"http://127.0.0.1:{cls.relay.port}", env=env, port=port,
                   extra_args=("--tag-freshness", "1h"))
        m.name = name
        cls.addClassCleanup(m.stop)
        m.start()
        return m

    @classmethod
    def out(cls, phase, label):
        return harness.copy_dest(cls.work, phase, label)

    def logs(self):
        """The end of every node's and the balancer's log, for failure messages."""
        parts = [f"--- {n.name} (port {n.port}):\n{n.log()[-2500:]}" for n in self.nodes]
        return "\n".join(parts + [f"--- haproxy:\n{self.lb.log()[-2500:]}"])

    def pull_through(self, host, image, phase, clients, retries, on_tick=None):
        """`clients` concurrent pulls of `image` from host, each checked byte for byte
        against the direct pull; returns the clients (attempts, errors)."""
        dests = [self.out(phase, f"{image}-{i:02d}") for i in range(clients)]
        done = Pulls(self.work, host, image, dests, retries).run(on_tick=on_tick)
        failed = [c for c in done if not c["ok"]]
        self.assertEqual(failed, [], f"{len(failed)} of {clients} pulls of {image} failed "
                                     f"(with {retries} retries)\n{self.logs()}")
        for c in done:
            self.assertEqual(harness.compare_dirs(self.out("direct", image), c["dest"]), [],
                             f"{c['dest']} differs from the direct pull")
        return done

    def require(self, *tests):
        missing = [t for t in tests if t not in self.done]
        self.assertEqual(missing, [], "an earlier test of the class did not pass")

    def blob_homes(self, *images):
        """{digest: node name} of the images' blobs, from HEADs through the balancer
        (X-Hubcache-Node)."""
        homes = {}
        for name in images:
            for d in self.images[name].blobs:
                r = harness.request(self.lb.url, "HEAD", f"/v2/library/{name}/blobs/{d}",
                                    timeout=30)
                self.assertEqual(r.status, 200, f"HEAD {name} {d} through the balancer: {r}")
                homes[d] = r.header("X-Hubcache-Node")
        return homes

    def assert_nothing_asked_upstream(self, mark, token_mark, what):
        self.up.sync_log()
        self.assertEqual(self.up.requests(path_regex=r"/v2/.*", since=mark), [],
                         f"{what} asked the upstream")
        self.assertEqual(self.up.token_requests(since=token_mark), [],
                         f"{what} asked the token server")

    def test_1_herd_through_the_balancer_fetches_each_blob_once(self):
        img = self.images["multi"]
        self.up.sync_log()
        mark = self.up.mark()
        t0 = time.monotonic()
        self.pull_through(f"127.0.0.1:{self.lb.port}", "multi", "herd", CLIENTS, retries=0)
        took = time.monotonic() - t0
        self.up.sync_log()
        for digest in img.blobs:
            n = self.up.count_requests("GET", rf"/v2/library/[a-z0-9]+/blobs/{digest}",
                                       status=200, since=mark)
            self.assertEqual(n, 1, f"{digest} fetched from the upstream {n} times by the "
                                   f"cluster\n{self.logs()}")
        # The manifests' requests all meet on library/multi's node: the tag and each
        # platform's manifest are fetched once too.
        n = self.up.count_requests("GET", r"/v2/library/multi/manifests/1", status=200,
                                   since=mark)
        self.assertEqual(n, 1, f"library/multi:1 fetched {n} times by the cluster")
        for _, child in img.children:
            n = self.up.count_requests("GET", rf"/v2/library/multi/manifests/{child}",
                                       status=200, since=mark)
            self.assertEqual(n, 1, f"manifest {child} fetched {n} times by the cluster")
        before = {n.name: stats(n) for n in self.nodes}
        started = {name: s["fills"]["started"] for name, s in before.items()}
        self.assertEqual(sum(started.values()), len(img.blobs),
                         f"fills started per node: {started}")
        fillers = [name for name, k in started.items() if k]
        self.assertGreater(len(fillers), 1, f"one node filled every blob: {started}")

        # Each node copies into the bucket exactly what it filled.
        def copied():
            now = {n.name: stats(n)["s3"] for n in self.nodes}
            return now if all(now[name]["copies"] >= started[name] and
                              now[name]["writes_pending"] == 0 for name in now) else None
        s3 = wait_until(copied, 60, "every fill copied into the bucket")
        for name, s in s3.items():
            self.assertEqual((s["copies"], s["copy_failures"], s["copies_dropped"]),
                             (started[name], 0, 0), f"{name}: {s}")
        keys = set(bucket_keys(f"{ROOT}/cache/"))
        for digest in img.blobs:
            self.assertIn(bucket_key("blobs", digest), keys)
        for digest in img.manifests:
            self.assertIn(bucket_key("manifests", digest), keys)
        self.assertTrue([k for k in keys if k.startswith(f"{ROOT}/cache/tags/library/multi/")],
                        f"no tag record of library/multi in the bucket: {sorted(keys)}")
        # The balancer sends a blob to the node that filled it: that node's L1 has it.
        homes = self.blob_homes("multi")
        by_name = {n.name: n for n in self.nodes}
        for digest, home in homes.items():
            self.assertTrue(os.path.exists(harness.cache_object_path(by_name[home].root,
                                                                     "blob", digest)),
                            f"{digest}: the balancer's node {home} does not hold it")
        print(f"\ncluster herd: {CLIENTS} pulls of multi in {took:.1f}s, fills per node "
              f"{started}", file=sys.stderr)
        self.done.add("herd")

    def test_2_a_node_pulls_from_the_bucket_what_others_fetched(self):
        self.require("herd")
        img = self.images["multi"]
        st = {n.name: stats(n) for n in self.nodes}
        # Not library/multi's home (no manifest request reached it), lacking the most blobs.
        lacking = {n.name: [d for d in img.blobs if not os.path.exists(
            harness.cache_object_path(n.root, "blob", d))] for n in self.nodes}
        candidates = [n for n in self.nodes
                      if st[n.name]["requests"]["manifest"]["requests"] == 0]
        self.assertTrue(candidates, f"every node served library/multi's manifests: {st}")
        node = max(candidates, key=lambda n: len(lacking[n.name]))
        self.assertTrue(lacking[node.name], f"{node.name} holds every blob already")
        self.assertFalse(os.path.exists(harness.cache_object_path(node.root, "manifest",
                                                                  img.digest)))
        before = st[node.name]["s3"]
        self.up.sync_log()
        mark, token_mark = self.up.mark(), self.up.token_mark()
        dest = self.out("one-node", "multi")
        skopeo_copy_all(self.work, f"127.0.0.1:{node.port}", "multi", dest)
        self.assertEqual(harness.compare_dirs(self.out("direct", "multi"), dest), [])
        self.assert_nothing_asked_upstream(mark, token_mark,
                                           f"a pull through {node.name} alone")
        after = stats(node)["s3"]
        self.assertGreaterEqual(after["tag_hits"] - before["tag_hits"], 1, after)
        self.assertGreaterEqual(after["blob_hits"] - before["blob_hits"],
                                len(lacking[node.name]), after)
        print(f"\ncluster one node: {node.name} lacked {len(lacking[node.name])} of "
              f"{len(img.blobs)} blobs and every manifest; pulled with no upstream request",
              file=sys.stderr)
        self.done.add("one-node")

    def test_3_a_node_killed_mid_run(self):
        self.require("herd")
        img = self.images["docker2"]
        self.up.sync_log()
        self.relay.rate_bytes_s = SLOW_UPSTREAM_BYTES_S
        self.addCleanup(setattr, self.relay, "rate_bytes_s", None)
        mark = self.up.mark()
        received = {n.name: stats(n)["upstream"]["bytes_received"] for n in self.nodes}
        state = {"victim": None, "killed_at": None, "down_after": None}

        def kill_once_a_fill_runs():
            # Mid-body: a fill in flight that has received a quarter of a MiB or more, so
            # its clients hold part of the blob (not a node that has answered nothing yet,
            # whose requests HAProxy would simply send to the next node).
            if state["victim"] is None:
                for n in self.nodes:
                    s = stats(n)
                    if (s["fills"]["in_flight"] > 0 and
                            s["upstream"]["bytes_received"] - received[n.name] >= 256 << 10):
                        n.stop(signal.SIGKILL)  # by its PID
                        state["victim"], state["killed_at"] = n, time.monotonic()
                        return
            elif state["down_after"] is None:
                if self.lb.states().get(state["victim"].name, "").startswith("DOWN"):
                    state["down_after"] = time.monotonic() - state["killed_at"]

        t0 = time.monotonic()
        done = self.pull_through(f"127.0.0.1:{self.lb.port}", "docker2", "kill", CLIENTS,
                                 retries=2, on_tick=kill_once_a_fill_runs)
        took = time.monotonic() - t0
        victim = state["victim"]
        self.assertIsNotNone(victim, "no node was seen with a fill in flight")
        self.relay.rate_bytes_s = None
        self.lb.wait_out(victim, timeout_s=3)
        if state["down_after"] is None:
            state["down_after"] = time.monotonic() - state["killed_at"]
        self.assertLess(state["down_after"], 3.0)
        retried = sum(c["attempts"] - 1 for c in done)

        # The survivors finish (and copy) what the dead node left.
        want = {bucket_key("blobs", d) for d in img.blobs}
        want |= {bucket_key("manifests", d) for d in img.manifests}
        wait_until(lambda: want <= set(bucket_keys(f"{ROOT}/cache/")), 30,
                   "docker2's blobs and manifest in the bucket")

        fresh = self.start_node(victim.name, port=victim.port)
        self.nodes[self.nodes.index(victim)] = fresh
        self.lb.wait_up(fresh, timeout_s=10)
        self.up.sync_log()
        # What the upstream sent during the run: the tag's manifest once (the node that
        # took library/docker2 over, if it moved, read its tag record from the bucket);
        # a blob the dead node was filling at most twice (its fill never reached the
        # bucket), every other blob once.
        fetched = {d: self.up.count_requests("GET", rf"/v2/library/docker2/blobs/{d}",
                                             status=200, since=mark) for d in img.blobs}
        tag_fetches = self.up.count_requests("GET", r"/v2/library/docker2/manifests/1",
                                             status=200, since=mark)
        mark, token_mark = self.up.mark(), self.up.token_mark()
        homes = self.blob_homes("docker2", "multi")
        self.assertIn(victim.name, homes.values(),
                      f"no blob read through the balancer reached the rejoined node: {homes}")
        self.assertEqual(tag_fetches, 1, f"library/docker2:1 fetched {tag_fetches} times")
        for d, n in fetched.items():
            self.assertLessEqual(n, 2 if homes[d] == victim.name else 1,
                                 f"{d} (home {homes[d]}) fetched {n} times\n{self.logs()}")
        dest = self.out("rejoined", "docker2")
        skopeo_copy_all(self.work, f"127.0.0.1:{fresh.port}", "docker2", dest)
        self.assertEqual(harness.compare_dirs(self.out("direct", "docker2"), dest), [])
        self.assert_nothing_asked_upstream(mark, token_mark,
                                           f"the rejoined {victim.name} with an empty L1")
        print(f"\ncluster kill: {victim.name} killed, DOWN after {state['down_after']:.2f}s; "
              f"{CLIENTS} pulls of docker2 in {took:.1f}s with {retried} retries; upstream "
              f"blob GETs {sorted(fetched.values())}", file=sys.stderr)

