"""A real S3 gateway for the tests: a one-node Ceph cluster and its radosgw, on loopback.

Debian 12's Ceph 16.2: one monitor, one OSD on memstore (objects in RAM, no disk), no
manager, and radosgw with its beast frontend. It checks SigV4 signatures as AWS S3 does
(a wrong secret gets 403 SignatureDoesNotMatch), so it stands in for AWS S3, MinIO or a
production Ceph. Up in about 20 s, ~150 MB of RAM plus what is stored.

    with CephRgw(workdir) as s3:          # started: user, keys and bucket created
        s3.env()                           # S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, ...
        s3.request("GET", "/" + s3.bucket, {"list-type": "2"})   # a SigV4-signed request

Every daemon gets its own state dir under `workdir`/ceph-<random>, the monitor and the
gateway listen on free loopback ports the OS picked, and stop() ends exactly the three
processes start() launched (by PID: SIGTERM, then SIGKILL after 10 s) and removes the
state. Nothing here touches a system-wide Ceph (/etc/ceph, /var/lib/ceph, systemd units).

Needs radosgw, ceph-mon, ceph-osd and ceph-common (scripts/install-deps.sh all). A
missing one raises MissingTools; the test module decides what that means (test_s3 fails:
a skip would hide it).
"""
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

import harness
from mirror import free_port

TOOLS = ("radosgw", "radosgw-admin", "ceph-mon", "ceph-osd", "ceph", "ceph-authtool",
         "monmaptool")


class MissingTools(RuntimeError):
    pass


class CephRgw:
    def __init__(self, workdir, bucket="hubcache", region="us-east-1",
                 access_key="hubcacheaccess", secret_key="hubcachesecret0123456789",
                 mem_bytes=2 << 30):
        self.workdir = workdir
        self.bucket = bucket
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.mem_bytes = mem_bytes
        self.dir = None
        self.mon_port = None
        self.port = None
        self._procs = {}  # name -> Popen, in start order
        self._logs = []

    # -- life cycle --------------------------------------------------------------------

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def env(self):
        """What tests/s3_client_itest reads."""
        return {"S3_ENDPOINT": self.endpoint, "S3_ACCESS_KEY": self.access_key,
                "S3_SECRET_KEY": self.secret_key, "S3_BUCKET": self.bucket,
                "S3_REGION": self.region}

    def storage_env(self, root, secret=None, endpoint=None, bucket=None):
        """The REGISTRY_STORAGE_* settings of a hubcache on this gateway's bucket under
        `root` (a wrong `secret`, another `endpoint` or `bucket` for the failure tests)."""
        return {
            "REGISTRY_STORAGE": "s3",
            "REGISTRY_STORAGE_S3_BUCKET": bucket or self.bucket,
            "REGISTRY_STORAGE_S3_REGION": self.region,
            "REGISTRY_STORAGE_S3_REGIONENDPOINT": endpoint or self.endpoint,
            "REGISTRY_STORAGE_S3_ACCESSKEY": self.access_key,
            "REGISTRY_STORAGE_S3_SECRETKEY": secret or self.secret_key,
            "REGISTRY_STORAGE_S3_FORCEPATHSTYLE": "true",
            "REGISTRY_STORAGE_S3_SECURE": "false",
            "REGISTRY_STORAGE_S3_ROOTDIRECTORY": root,
        }

    def start(self, timeout_s=120):
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing:
            raise MissingTools(f"missing tools: {', '.join(missing)} "
                               "(scripts/install-deps.sh all installs radosgw, ceph-mon, "
                               "ceph-osd, ceph-common)")
        deadline = time.monotonic() + timeout_s
        self.dir = tempfile.mkdtemp(prefix="ceph-", dir=self.workdir)
        try:
            self._start(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Ends the daemons this object started (newest first) and removes their state."""
        for name, proc in reversed(list(self._procs.items())):
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        self._procs.clear()
        for f in self._logs:
            f.close()
        self._logs.clear()
        if self.dir and not os.environ.get("HUBCACHE_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def pids(self):
        """{daemon name (mon, osd, rgw): pid} of the daemons running now."""
        return {name: p.pid for name, p in self._procs.items() if p.poll() is None}

    def log_tail(self, name, lines=30):
        """The end of a daemon's output (mon, osd, rgw), for failure messages."""
        try:
            with open(os.path.join(self.dir, "log", f"{name}.out"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # -- start-up ------------------------------------------------------------------------

    def _path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _run(self, argv, deadline, timeout_s=30, check=True):
        left = max(1.0, min(timeout_s, deadline - time.monotonic()))
        p = subprocess.run(argv, capture_output=True, text=True, timeout=left,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])}... exit {p.returncode}: "
                               f"{(p.stderr or p.stdout)[-2000:]}")
        return p

    def _ceph(self, *args, deadline, check=True, timeout_s=20):
        return self._run(["ceph", "--conf", self._path("ceph.conf"), "--connect-timeout", "5",
                          *args], deadline, timeout_s=timeout_s, check=check)

    def _spawn(self, name, argv):
        log = open(self._path("log", f"{name}.out"), "ab")
        self._logs.append(log)
        self._procs[name] = subprocess.Popen(argv, stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait(self, what, predicate, deadline, daemon):
        while time.monotonic() < deadline:
            proc = self._procs.get(daemon)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{daemon} exited ({proc.returncode}) before {what}:\n"
                                   f"{self.log_tail(daemon)}")
            if predicate():
                return
            time.sleep(0.2)
        raise TimeoutError(f"timed out waiting for {what}:\n{self.log_tail(daemon)}")

    def _start(self, deadline):
        for d in ("mon", "osd0", "rgw", "run", "log"):
            os.makedirs(self._path(d))
        self.mon_port = free_port()
        self.port = free_port()
        with open("/proc/sys/kernel/random/uuid") as f:
            fsid = f.read().strip()
        conf = self._path("ceph.conf")
        # tcp_nodelay on the gateway: without it a GET's body waits for the ACK of its
        # headers (Nagle against delayed ACKs), 40 ms per small object.
        with open(conf, "w") as f:
            f.write(f"""[global]
fsid = {fsid}
mon host = 127.0.0.1:{self.mon_port}
mon initial members = a
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {self._path("keyring")}
run dir = {self._path("run")}
log file = {self._path("log")}/$name.log
admin socket = {self._path("run")}/$name.asok
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = {self.mem_bytes}
osd data = {self._path("osd0")}
mon data = {self._path("mon")}
ms bind ipv6 = false
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{self.port} tcp_nodelay=1
rgw data = {self._path("rgw")}
rgw dns name = localhost
""")
        keyring = self._path("keyring")
        self._run(["ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.",
                   "--cap", "mon", "allow *"], deadline)
        self._run(["ceph-authtool", keyring, "--gen-key", "-n", "client.admin", "--cap", "mon",
                   "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *"], deadline)
        monmap = self._path("monmap")
        self._run(["monmaptool", "--create", "--add", "a", f"127.0.0.1:{self.mon_port}",
                   "--fsid", fsid, monmap], deadline)
        self._run(["ceph-mon", "--conf", conf, "--mkfs", "-i", "a", "--monmap", monmap,
                   "--keyring", keyring], deadline)
        self._spawn("mon", ["ceph-mon", "--conf", conf, "-i", "a", "-f"])
        self._wait("the monitor to answer",
                   lambda: self._ceph("-s", deadline=deadline, check=False,
                                      timeout_s=8).returncode == 0, deadline, "mon")

        osd_id = self._ceph("osd", "create", deadline=deadline).stdout.strip()
        osd_keyring = self._path("osd0", "keyring")
        self._run(["ceph-authtool", "--create-keyring", osd_keyring, "--gen-key", "-n",
                   f"osd.{osd_id}"], deadline)
        self._ceph("auth", "add", f"osd.{osd_id}", "osd", "allow *", "mon", "allow profile osd",
                   "-i", osd_keyring, deadline=deadline)
        self._run(["ceph-osd", "--conf", conf, "-i", osd_id, "--mkfs", "--osd-data",
                   self._path("osd0"), "--keyring", osd_keyring], deadline, timeout_s=60)
        self._ceph("osd", "crush", "add", f"osd.{osd_id}", "1.0", "host=localhost",
                   "root=default", deadline=deadline, check=False)
        self._spawn("osd", ["ceph-osd", "--conf", conf, "-i", osd_id, "-f", "--osd-data",
                            self._path("osd0"), "--keyring", osd_keyring])

        def osd_up():
            p = self._ceph("osd", "stat", "-f", "json", deadline=deadline, check=False)
            try:
                return p.returncode == 0 and json.loads(p.stdout).get("num_up_osds") == 1
            except ValueError:
                return False
        self._wait("the OSD to come up", osd_up, deadline, "osd")

        rgw_keyring = self._path("rgw", "keyring")
        self._ceph("auth", "get-or-create", "client.rgw", "mon", "allow rw", "osd", "allow rwx",
                   "-o", rgw_keyring, deadline=deadline)
        self._spawn("rgw", ["radosgw", "--conf", conf, "-n", "client.rgw", "--keyring",
                            rgw_keyring, "-f"])

        def answers():
            try:
                return harness.request(self.endpoint, "GET", "/", timeout=2).status > 0
            except OSError:
                return False
        self._wait("radosgw to answer HTTP", answers, deadline, "rgw")
        self._run(["radosgw-admin", "--conf", conf, "user", "create", "--uid=hubcache-tests",
                   "--display-name=hubcache tests", f"--access-key={self.access_key}",
                   f"--secret={self.secret_key}"], deadline)
        # The new user may take a moment to be seen by the gateway.
        created = []

        def bucket_created():
            r = self.request("PUT", f"/{self.bucket}")
            created.append(r)
            return r.status == 200
        self._wait(f"bucket {self.bucket} to be created (last answer: "
                   f"{created[-1] if created else None})", bucket_created, deadline, "rgw")
        # The gateway creates a pool on the first write and another on the first multipart
        # upload (about 2 s each): done here, so that no test's first request pays for it.
        warm = f"/{self.bucket}/ceph-rgw-warm-up"
        for r in (self.request("PUT", warm, body=b"x"), self.request("DELETE", warm)):
            if r.status not in (200, 204):
                raise RuntimeError(f"warm-up answered {r}")
        r = self.request("POST", warm, {"uploads": ""})
        upload_id = re.search(rb"<UploadId>([^<]+)</UploadId>", r.body)
        if r.status != 200 or not upload_id:
            raise RuntimeError(f"warm-up CreateMultipartUpload answered {r}")
        r = self.request("DELETE", warm, {"uploadId": upload_id.group(1).decode()})
        if r.status != 204:
            raise RuntimeError(f"warm-up AbortMultipartUpload answered {r}")

    # -- requests ------------------------------------------------------------------------

    def request(self, method, path, query=None, body=b"", headers=None, timeout=30):
        """One SigV4-signed request (path-style, e.g. "/bucket/key"): a harness.Response.
        `query` is a dict of raw names and values; the payload is signed by its SHA-256."""
        query = query or {}

        def enc(s, safe):
            return urllib.parse.quote(s, safe=safe)
        canonical_query = "&".join(
            f"{k}={v}" for k, v in sorted((enc(k, "-_.~"), enc(v, "-_.~"))
                                          for k, v in query.items()))
        canonical_path = enc(path, "/-_.~")
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        payload = hashlib.sha256(body).hexdigest()
        signed = {"host": f"127.0.0.1:{self.port}", "x-amz-content-sha256": payload,
                  "x-amz-date": amz_date}
        names = sorted(signed)
        canonical = "\n".join([method, canonical_path, canonical_query,
                               "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names),
                               payload])
        scope = f"{amz_date[:8]}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.secret_key).encode()
        for part in (amz_date[:8], self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        h = {"x-amz-content-sha256": payload, "x-amz-date": amz_date,
             "Authorization": f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                              f"SignedHeaders={';'.join(names)}, Signature={signature}"}
        h.update(headers or {})
        target = canonical_path + ("?" + canonical_query if canonical_query else "")
        return harness.request(self.endpoint, method, target, headers=h, body=body,
                               timeout=timeout)
