"""Deployment: the shipped files in deploy/, `hubcache check-config`, and the README's
configuration reference, each checked the way an operator would use it.

  ContainerdPull   Debian's containerd, started here as root with its own root, state dir,
                   socket and a minimal config (CRI and the btrfs/zfs/devmapper/aufs snapshotters
                   off), pulls docker.io/library/multi:1 (OCI index) and docker2:1 (schema2) with
                   `ctr images pull --hosts-dir`, through a hubcache in front of the test upstream,
                   and ghcr.io/team/sharea:1 from a second (basic-auth) upstream the mirror's
                   config.yml lists as ghcr.io. The hosts dir holds docker.io/ and ghcr.io/
                   hosts.toml derived from deploy/certs.d: the shipped host entry (its
                   capabilities) with the mirror's URL, `server` = the local upstream (never
                   the internet). Asserts the mirror answered with ?ns=docker.io (ns=ghcr.io),
                   the upstream saw no request from containerd itself, the image digest is the
                   fixture's and it unpacked; a second pull after deleting the content is served
                   from the cache. Skipped (exit 77 for the module, after the other tests ran)
                   when not root or containerd cannot start here, with the reason.
  DeployFiles      systemd-analyze verify (and an offline security score) of hubcache.service;
                   its hardening, TimeoutStopSec above the shutdown grace; docker-compose.yaml,
                   prometheus.yml (promtool when installed) and kubernetes.yaml parse and use
                   only settings check-config accepts; every package the Dockerfile installs
                   exists in Debian's archive, its runtime packages provide every library the
                   binary links, and its HEALTHCHECK command passes against a running mirror and
                   fails against a stopped one; daemon.json, certs.d/*/hosts.toml,
                   registries.conf and config.yml parse into what their clients read and name
                   the same mirror and registries; env.example is exactly `check-config
                   --env-example` and validates. The cluster (deploy/cluster/,
                   deploy/kubernetes/cluster.yaml): `haproxy -c` on haproxy.cfg and on the
                   Kubernetes ConfigMap's copy (which differs from it in its server lines
                   only, one per StatefulSet pod through the headless Service), `nginx -t` on
                   nginx.conf (node names and temp paths adapted: they do not resolve here);
                   the nodes of the compose file and the StatefulSet use only settings
                   check-config accepts (the bucket settings too, once check-config knows
                   them: until then they are set aside with a note), the same ones on every
                   node, each node its own L1 volume, the S3 keys from a Secret.
  HaproxyKey,      deploy/cluster/haproxy.cfg and nginx.conf run on loopback in front of three
  NginxKey         tiny HTTP servers that answer with their name: a blob digest reaches one
                   node under any repository name, every request of a repository's upload and
                   manifest flow reaches one node, the query string (?ns=docker.io) is no part
                   of the key, 100 digests spread (at least 15 on each node), other requests
                   go to any node, and a node stopped, or left out of the configuration, moves
                   only its own keys. HAProxy checks each node on /readyz, and moves a dead
                   node's reads at once (retry and redispatch), before its check fails.
  CheckConfig      exit 0 and every setting on valid input, secrets masked in text and JSON
                   (the password never in the output), flags win, printed values accepted back;
                   exit 2 with one line on invalid input; unknown REGISTRY_* names noted.
  ReadmeReference  the README's configuration table and the code's settings (check-config
                   --json) list the same settings, with the same flags and defaults, and the
                   table's settings are all accepted by check-config. Both sides are read now.

Needs $HUBCACHE_BIN; the containerd part also docker-registry, skopeo, openssl, containerd;
the cluster part haproxy and nginx.
"""
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
from balancer import (HaproxyBalancer, haproxy_rules, haproxy_servers,  # noqa: E402
                      servers_at, stop_process)
import harness  # noqa: E402
from mirror import REPO_ROOT, Mirror, free_port, hubcache_bin, wait_until  # noqa: E402
from upstream import PUSH_PASSWORD, PUSH_USER, Upstream, started_upstream  # noqa: E402

DEPLOY = os.path.join(REPO_ROOT, "deploy")
README = os.path.join(REPO_ROOT, "README.md")
SECRET = "pa55-Wörd_that-must-NEVER-show-9f3c"
SKIPPED = []  # reasons a part of this module could not run here


def deploy_path(*names):
    return os.path.join(DEPLOY, *names)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def base_env(extra=None):
    """The process environment without any REGISTRY_* / HUBCACHE_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("REGISTRY_") or k.startswith("HUBCACHE_"))}
    env.update(extra or {})
    return env


def check_config(*args, env=None, timeout=30):
    return subprocess.run([hubcache_bin(), "check-config", *args], env=base_env(env),
                          capture_output=True, text=True, timeout=timeout)


def settings(env=None, args=()):
    """check-config --json as {env name: row}; fails the caller when the config is invalid."""
    r = check_config("--json", *args, env=env)
    if r.returncode != 0:
        raise AssertionError(f"check-config --json {args} exited {r.returncode}: {r.stderr}")
    return {row["env"]: row for row in json.loads(r.stdout)}


def duration_s(text):
    """'45s', '1m', '250ms', '30' -> seconds (systemd / hubcache duration forms used here)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|min|h)?", text.strip())
    if not m:
        raise ValueError(f"unexpected duration {text!r}")
    scale = {"ms": 0.001, None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return int(m.group(1)) * scale


def unknown_names(stderr):
    return re.findall(r"note: (\S+) is set but is not a hubcache setting", stderr)


# -- containerd -----------------------------------------------------------------------------

CONTAINERD_CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"""


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {v!r} as TOML here")


def derived_hosts_toml(shipped_text, server_url, mirror_url):
    """deploy/hosts.toml with `server` and the host's URL replaced, the host's keys kept."""
    shipped = tomllib.loads(shipped_text)
    hosts = shipped.get("host", {})
    if len(hosts) != 1:
        raise AssertionError(f"deploy/hosts.toml should name one mirror host, has {list(hosts)}")
    (entry,) = hosts.values()
    lines = [f"server = {toml_value(server_url)}", "", f"[host.{toml_value(mirror_url)}]"]
    lines += [f"  {k} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


class Containerd:
    """A private containerd daemon: root, state, socket and config under `d`."""

    def __init__(self, d):
        self.dir = d
        self.sock = os.path.join(d, "containerd.sock")
        self.log_path = os.path.join(d, "containerd.log")
        self.proc = None
        self.snapshotter = "overlayfs"
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write(CONTAINERD_CONFIG.format(d=d))

    def ctr(self, *args, timeout=60):
        return subprocess.run(["ctr", "--address", self.sock, "--namespace", "hubcache-test",
                               *args], capture_output=True, text=True, timeout=timeout)

    def start(self, timeout_s=30):
        """Starts the daemon; returns None, or the reason it cannot run here."""
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["containerd", "--config",
                                      os.path.join(self.dir, "config.toml")],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"containerd exited with {self.proc.returncode}: {self.log()[-1500:]}"
            if os.path.exists(self.sock) and self.ctr("version", timeout=5).returncode == 0:
                break
            time.sleep(0.05)
        else:
            return f"containerd did not answer within {timeout_s}s: {self.log()[-1500:]}"
        plugins = self.ctr("plugins", "ls").stdout
        if not re.search(r"io\.containerd\.snapshotter\.v1\s+overlayfs\s+\S+\s+ok", plugins):
            self.snapshotter = "native"  # overlayfs cannot mount here; native still unpacks
        return None

    def log(self):
        return harness.read_text(self.log_path)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None:
            self._log.close()
        # Nothing may stay mounted under the temp dir before it is removed.
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f]
        for m in sorted((m for m in mounts if m.startswith(self.dir + "/")), reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True, timeout=10)


class ContainerdPull(unittest.TestCase):
    IMAGES = ("multi", "docker2")

    @classmethod
    def setUpClass(cls):
        reason = None
        if os.geteuid() != 0:
            reason = "containerd needs root and this test runs as uid %d" % os.geteuid()
        missing = [t for t in ("containerd", "ctr", "docker-registry", "skopeo", "openssl")
                   if shutil.which(t) is None]
        if missing:
            reason = f"not installed: {', '.join(missing)} (scripts/install-deps.sh all)"
        if reason:
            SKIPPED.append(reason)
            raise unittest.SkipTest(reason)
        cls.work, cls.up = started_upstream("deploy-ctr", cls.addClassCleanup)
        # A second registry, ghcr.io as the node knows it, here a basic-auth registry on
        # loopback that the mirror's config.yml lists under hubcache.upstreams.
        cls.ghcr = Upstream(cls.work, auth="basic", name="ghcr")
        cls.addClassCleanup(cls.ghcr.stop)
        cls.ghcr.start()
        fixtures.push(cls.ghcr, cls.work, "sharea", repo="team/sharea")
        cls.ghcr_img = fixtures.describe(cls.ghcr, "sharea", repo="team/sharea")
        cls.img = {}
        for name in cls.IMAGES:
            fixtures.push(cls.up, cls.work, name)
            cls.img[name] = fixtures.describe(cls.up, name)
        config = os.path.join(cls.work, "config.yml")
        with open(config, "w") as f:
            f.write(f"hubcache:\n  upstreams:\n    - name: ghcr.io\n      url: {cls.ghcr.url}\n"
                    f"      username: {PUSH_USER}\n      password: {PUSH_PASSWORD}\n")
        cls.mirror = Mirror(cls.work, cls.up.url, extra_args=[config])
        cls.addClassCleanup(cls.mirror.stop)
        cls.mirror.start()
        cls.ctrd = Containerd(os.path.join(cls.work, "containerd"))
        cls.addClassCleanup(cls.ctrd.stop)
        reason = cls.ctrd.start()
        if reason:
            SKIPPED.append(reason)
            raise unittest.SkipTest(reason)
        # The shipped certs.d, each hosts.toml's server pointed at the loopback upstream
        # (nothing leaves the machine) and its mirror host at this hubcache.
        cls.hosts_dir = os.path.join(cls.work, "certs.d")
        cls.hosts_toml = {}
        for registry, server in (("docker.io", cls.up.url), ("ghcr.io", cls.ghcr.url)):
            os.makedirs(os.path.join(cls.hosts_dir, registry))
            cls.hosts_toml[registry] = derived_hosts_toml(
                read(deploy_path("certs.d", registry, "hosts.toml")), server, cls.mirror.url)
            with open(os.path.join(cls.hosts_dir, registry, "hosts.toml"), "w") as f:
                f.write(cls.hosts_toml[registry])

    def pull_ref(self, ref):
        r = self.ctrd.ctr("images", "pull", "--snapshotter", self.ctrd.snapshotter,
                          "--hosts-dir", self.hosts_dir, ref, timeout=180)
        self.assertEqual(r.returncode, 0,
                         f"ctr pull {ref} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}\n"
                         f"hosts.toml:\n{self.hosts_toml}\nmirror log:\n{self.mirror.log()[-3000:]}")

    def pull(self, name):
        self.pull_ref(f"docker.io/library/{name}:1")

    def image_digest(self, name, ref=None):
        ref = ref or f"docker.io/library/{name}:1"
        for line in self.ctrd.ctr("images", "ls").stdout.splitlines():
            fields = line.split()
            if fields and fields[0] == ref:
                return fields[2]
        return None

    def mirror_requests(self, name):
        """The mirror's access-log targets for library/NAME."""
        return re.findall(rf"path=(/v2/library/{name}/\S+)", self.mirror.log())

    def test_pull_from_another_registry_through_its_hosts_toml(self):
        ref = "ghcr.io/team/sharea:1"
        since = self.ghcr.mark()
        self.pull_ref(ref)
        self.assertEqual(self.image_digest(None, ref), self.ghcr_img.digest)
        targets = re.findall(r"path=(/v2/team/sharea/\S+) status=200 .* registry=ghcr.io",
                             self.mirror.log())
        self.assertTrue(any("/manifests/1?ns=ghcr.io" in t for t in targets), targets)
        self.assertTrue(any("/blobs/sha256:" in t for t in targets), targets)
        self.ghcr.sync_log()
        lines = self.ghcr.requests(since=since)
        self.assertEqual([l for l in lines if "containerd" in l.ua], [],
                         "containerd went to the registry itself: the mirror failed")
        self.assertTrue([l for l in lines if l.ua.startswith("hubcache/")])

    def test_pull_through_the_shipped_hosts_toml(self):
        self.assertNotIn("registry-1.docker.io", self.hosts_toml["docker.io"])
        for name in self.IMAGES:
            with self.subTest(image=name):
                since = self.up.mark()
                self.pull(name)
                self.assertEqual(self.image_digest(name), self.img[name].digest)
                targets = self.mirror_requests(name)
                self.assertTrue(any("/manifests/1?ns=docker.io" in t for t in targets), targets)
                self.assertTrue(any("/blobs/sha256:" in t and "ns=docker.io" in t
                                    for t in targets), targets)
                self.up.sync_log()
                from_containerd = [l for l in self.up.requests(since=since)
                                   if "containerd" in l.ua]
                self.assertEqual(from_containerd, [],
                                 "containerd went to the upstream itself: the mirror failed")
                self.assertGreater(len([l for l in self.up.requests(since=since)
                                        if l.ua.startswith("hubcache/")]), 0,
                                   "the upstream saw nothing from the mirror")
        snapshots = self.ctrd.ctr("snapshots", "--snapshotter", self.ctrd.snapshotter, "ls")
        self.assertGreaterEqual(len(snapshots.stdout.strip().splitlines()), 2,
                                f"nothing unpacked:\n{snapshots.stdout}{snapshots.stderr}")

    def test_second_pull_is_served_from_the_cache(self):
        name = "multi"
        self.pull(name)
        r = self.ctrd.ctr("images", "rm", "--sync", f"docker.io/library/{name}:1")
        self.assertEqual(r.returncode, 0, r.stderr)
        for digest in self.img[name].blobs:  # left by garbage collection only if still in use
            self.ctrd.ctr("content", "rm", digest)
        content = self.ctrd.ctr("content", "ls", "--quiet").stdout
        self.assertEqual([d for d in self.img[name].blobs if d in content], [])
        self.up.sync_log()
        since = self.up.mark()
        self.pull(name)
        self.up.sync_log()
        blob_gets = self.up.count_requests("GET", r"/v2/library/multi/blobs/.*", since=since)
        self.assertEqual(blob_gets, 0, "a warm pull fetched blobs upstream again")
        self.assertIn("cache=hit", self.mirror.log())


# -- the shipped files ----------------------------------------------------------------------

def unit_entries(text):
    """A systemd unit as [(section, key, value)] (keys may repeat)."""
    out, section = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def dockerfile_instructions(text):
    """[(INSTRUCTION, argument text)] with continuation lines joined and comments dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def apt_packages(run_text):
    """Package names after `apt-get install` in a RUN command (options dropped)."""
    pkgs = []
    for m in re.finditer(r"apt-get\s+install\s+([^&;|]*)", run_text):
        pkgs += [w for w in m.group(1).split() if not w.startswith("-") and w != "\\"]
    return pkgs


def install_deps_build_packages():
    text = read(os.path.join(REPO_ROOT, "scripts", "install-deps.sh"))
    m = re.search(r'^BUILD_PKGS="([^"]*)"', text, re.M)
    return m.group(1).split()


def packages_in_archive(pkgs):
    """The names among `pkgs` that Debian's archive (apt's package lists) has."""
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *pkgs], capture_output=True,
                       text=True, timeout=120)
    return set(re.findall(r"(?m)^Package: (\S+)$", r.stdout))


def needed_library_packages(binary):
    """{soname: Debian package} for every shared library the binary links directly."""
    dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, timeout=30)
    sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn.stdout)
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
    candidates = {}  # soname -> paths dpkg may know it by (usrmerge: /lib and /usr/lib)
    for so in sonames:
        m = re.search(rf"^\s*{re.escape(so)} \(.*x86-64.*\) => (\S+)$", cache, re.M) or \
            re.search(rf"^\s*{re.escape(so)} \(.*\) => (\S+)$", cache, re.M)
        p = m.group(1) if m else None
        candidates[so] = [p, "/usr" + p if not p.startswith("/usr/") else p[4:],
                          os.path.realpath(p)] if p else []
    r = subprocess.run(["dpkg", "-S", *{p for ps in candidates.values() for p in ps}],
                       capture_output=True, text=True, timeout=60)
    owner = {}
    for line in r.stdout.splitlines():  # "libcurl4:amd64: /usr/lib/x86_64-linux-gnu/libcurl.so.4"
        pkgs, _, path = line.partition(": ")
        owner[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    return {so: next((owner[p] for p in ps if p in owner), None)
            for so, ps in candidates.items()}


# -- the cluster (deploy/cluster/, deploy/kubernetes/cluster.yaml) ----------------------------

CLUSTER = os.path.join(DEPLOY, "cluster")
CLUSTER_K8S = os.path.join(DEPLOY, "kubernetes", "cluster.yaml")
HAPROXY_IMAGE_CONFIG = "/usr/local/etc/haproxy/haproxy.cfg"
# What an operator's .env gives the cluster's compose file (its ${...:?} variables).
COMPOSE_DOTENV = {"S3_ENDPOINT": "https://s3.example.internal", "S3_ACCESS_KEY": "AKIDEXAMPLE",
                  "S3_SECRET_KEY": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"}
# The bucket settings every node of the cluster sets (the CNCF registry's names).
S3_REQUIRED = ("REGISTRY_STORAGE", "REGISTRY_STORAGE_S3_REGIONENDPOINT",
               "REGISTRY_STORAGE_S3_BUCKET", "REGISTRY_STORAGE_S3_REGION",
               "REGISTRY_STORAGE_S3_ROOTDIRECTORY", "REGISTRY_STORAGE_S3_ACCESSKEY",
               "REGISTRY_STORAGE_S3_SECRETKEY")


def is_bucket_setting(name):
    """A setting of the bucket tier (issue 14), which check-config may not know yet."""
    return name == "REGISTRY_STORAGE" or name.startswith(("REGISTRY_STORAGE_S3_",
                                                          "REGISTRY_STORAGE_REDIRECT_"))


def compose_interpolate(text, given):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and ${VAR:?error} in `text`."""
    def value(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in given:
            return given[name]
        if op in (":-", "-"):
            return arg
        raise AssertionError(f"${{{name}}} has no default and the test's .env lacks it")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", value, text)


def nginx_servers(text):
    """The addresses of the `server` lines of nginx upstream blocks (not `server {`)."""
    return re.findall(r"(?m)^[ \t]*server[ \t]+([^\s{;]+)[^;{]*;", text)


def nginx_adapted(text, port, node_ports, d):
    """The configuration listening on a loopback port, its upstream servers at
    127.0.0.1:node_ports in order (None: left out), its temp files under `d`."""
    text = servers_at(text, r"(?m)^([ \t]*server[ \t]+)[^\s{;]+([^;{\n]*;.*)$", node_ports,
                      "nginx.conf upstream servers")
    text, n = re.subn(r"(?m)^([ \t]*listen[ \t]+)5000\b", rf"\g<1>127.0.0.1:{port}", text)
    if n != 1:
        raise AssertionError("nginx.conf: no `listen 5000` line to move to loopback")
    temp = "".join(f"\n    {kind}_temp_path {d}/{kind};"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return re.sub(r"(?m)^http \{", "http {" + temp, text, count=1)


def nginx_args(d, conf, foreground=False):
    """nginx with its prefix, early error log and pid file under `d`."""
    return ["nginx", "-p", d + "/", "-c", conf, "-e", os.path.join(d, "error.log"),
            "-g", f"pid {d}/nginx.pid;" + (" daemon off;" if foreground else "")]


class DeployFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cleanup = harness.module_workdir("deploy-files")
        cls.addClassCleanup(cleanup)
        cls.known = settings()

    def assert_valid_settings(self, env, where):
        """Every REGISTRY_*/HUBCACHE_* name in `env` is a setting, and check-config accepts."""
        names = [k for k in env if k.startswith(("REGISTRY_", "HUBCACHE_"))]
        self.assertEqual([n for n in names if n not in self.known], [],
                         f"{where}: names hubcache does not read")
        r = check_config(env=env)
        self.assertEqual(r.returncode, 0, f"{where}: {r.stderr}")
        self.assertEqual(unknown_names(r.stderr), [], where)

    # systemd

    def test_systemd_unit(self):
        text = read(deploy_path("hubcache.service"))
        entries = unit_entries(text)
        service = {}
        for section, key, value in entries:
            if section == "Service":
                service.setdefault(key, []).append(value)
        self.assertEqual(service.get("ProtectSystem"), ["strict"])
        self.assertEqual(service.get("Restart"), ["on-failure"])
        self.assertEqual(service.get("KillSignal"), ["SIGTERM"])
        self.assertEqual(service.get("NoNewPrivileges"), ["yes"])
        self.assertIn("-/etc/hubcache/env", service.get("EnvironmentFile", []))
        self.assertTrue(service.get("DynamicUser") == ["yes"] or
                        service.get("User", ["root"])[0] not in ("root", "0"),
                        "the unit must not run as root")
        env = dict(v.split("=", 1) for v in service.get("Environment", []))
        root = env.get("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
        self.assertIsNotNone(root, "the unit should set the cache directory")
        rw = " ".join(service.get("ReadWritePaths", [])).split()
        self.assertIn(root, rw, "the cache directory must be writable under ProtectSystem=strict")
        grace = duration_s(self.known["HUBCACHE_SHUTDOWN_GRACE"]["default"])
        self.assertGreater(duration_s(service["TimeoutStopSec"][0]), grace,
                           "systemd would kill the drain before the shutdown grace ends")
        self.assert_valid_settings(env, "hubcache.service Environment=")
        for key in ("ExecStart", "ExecStartPre"):
            for cmd in service.get(key, []):
                self.assertTrue(cmd.startswith("/usr/local/bin/hubcache "), cmd)

        # systemd-analyze wants the binaries to exist: point them at the one under test.
        if shutil.which("systemd-analyze") is None:
            print("\nNOTE: systemd-analyze not installed: unit not verified", file=sys.stderr)
            return
        unit = os.path.join(self.work, "hubcache.service")
        with open(unit, "w") as f:
            f.write(text.replace("/usr/local/bin/hubcache", os.path.abspath(hubcache_bin())))
        r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                           timeout=60)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 and re.search(r"(?i)not permitted|no such file.*(bus|socket)|"
                                           r"failed to (connect|initialize)", out) \
                and "hubcache.service" not in out:
            print(f"\nNOTE: systemd-analyze cannot run here, unit not verified: {out}",
                  file=sys.stderr)
            return
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(out, "", "systemd-analyze verify printed warnings")
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
        if r.returncode == 0 and m:
            print(f"\nsystemd-analyze security: exposure {m.group(1)}", file=sys.stderr)
            self.assertLess(float(m.group(1)), 2.5, r.stdout[-3000:])

    # compose and Prometheus

    def test_compose_file(self):
        import yaml
        path = deploy_path("docker-compose.yaml")
        doc = yaml.safe_load(read(path))
        reg = doc["services"]["registry"]
        env = {k: str(v) for k, v in reg["environment"].items()}
        self.assert_valid_settings(env, "docker-compose.yaml registry environment")
        self.assertEqual(env.get("REGISTRY_AUTH"), "htpasswd")
        root = env.get("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/var/lib/registry")
        mounts = {v.split(":")[1]: v.split(":")[0] for v in reg["volumes"]}
        self.assertEqual(mounts.get(root), "./config/registry/data")
        for var in ("REGISTRY_AUTH_HTPASSWD_PATH", "REGISTRY_HTTP_TLS_CERTIFICATE",
                    "REGISTRY_HTTP_TLS_KEY"):
            self.assertTrue(any(env[var].startswith(target + "/") for target in mounts),
                            f"{var}={env[var]} is not on a mounted volume")
        self.assertIn("5000:5000", [str(p) for p in reg["ports"]])
        self.assertEqual(reg["build"]["dockerfile"], "deploy/Dockerfile")
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, reg["build"]["context"],
                                                    reg["build"]["dockerfile"])))
        grace = duration_s(self.known["HUBCACHE_SHUTDOWN_GRACE"]["default"])
        self.assertGreater(duration_s(reg["stop_grace_period"]), grace)
        prom = doc["services"]["prometheus"]
        self.assertIn("monitoring", prom["profiles"])
        config_mount = [v for v in prom["volumes"] if v.endswith("/etc/prometheus/prometheus.yml:ro")]
        self.assertEqual(len(config_mount), 1)
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, config_mount[0].split(":")[0])))
        has_compose = shutil.which("docker") is not None and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
        if has_compose:
            r = subprocess.run(["docker", "compose", "-f", path, "config", "--quiet"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
        else:
            print("\nNOTE: no `docker compose` here: compose file checked as YAML only",
                  file=sys.stderr)

    def test_prometheus_config(self):
        import yaml
        doc = yaml.safe_load(read(deploy_path("prometheus.yml")))
        (job,) = [j for j in doc["scrape_configs"] if j["job_name"] == "hubcache"]
        self.assertEqual(job["metrics_path"], "/metrics")
        self.assertEqual(job["static_configs"][0]["targets"], ["registry:5000"])
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "config", deploy_path("prometheus.yml")],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    # Kubernetes

    def assert_probes_and_cache_mount(self, c, env, addr_port):
        """Kubernetes container `c` has its liveness probe on /healthz and its readiness
        probe on /readyz, both at `addr_port` (by number or by port name), and one volume
        mount at the cache root of `env`; returns that mount."""
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c[probe]["httpGet"]
            self.assertEqual(get["path"], path)
            self.assertEqual(ports.get(get["port"], get["port"]), addr_port)
        (mount,) = [m for m in c["volumeMounts"]
                    if m["mountPath"] == env["REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"]]
        return mount

    def test_kubernetes_manifest(self):
        import yaml
        docs = [d for d in yaml.safe_load_all(read(deploy_path("kubernetes.yaml"))) if d]
        by_kind = {d["kind"]: d for d in docs}
        self.assertEqual(sorted(by_kind), ["Deployment", "PersistentVolumeClaim", "Service"])
        pod = by_kind["Deployment"]["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = {e["name"]: e.get("value", "from-a-secret") for e in c["env"]}
        self.assert_valid_settings(env, "kubernetes.yaml container env")
        addr_port = int(env.get("REGISTRY_HTTP_ADDR", ":5000").rsplit(":", 1)[1])
        self.assertIn(addr_port, [p["containerPort"] for p in c["ports"]])
        mount = self.assert_probes_and_cache_mount(c, env, addr_port)
        (vol,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        self.assertEqual(vol["persistentVolumeClaim"]["claimName"],
                         by_kind["PersistentVolumeClaim"]["metadata"]["name"])
        self.assertEqual(by_kind["Deployment"]["spec"]["strategy"]["type"], "Recreate",
                         "two pods must never share one cache directory")
        grace = duration_s(self.known["HUBCACHE_SHUTDOWN_GRACE"]["default"])
        self.assertGreater(pod["terminationGracePeriodSeconds"], grace)
        svc = by_kind["Service"]["spec"]
        self.assertEqual(svc["selector"], by_kind["Deployment"]["spec"]["selector"]["matchLabels"])
        self.assertEqual(svc["ports"][0]["port"], addr_port)

    # the cluster

    def require(self, tool):
        if shutil.which(tool) is None:
            reason = f"{tool} not installed (scripts/install-deps.sh all)"
            SKIPPED.append(reason)
            self.skipTest(reason)

    def assert_valid_node_settings(self, env, where):
        """assert_valid_settings for a cluster node. The bucket settings are checked with
        the rest once check-config knows them; until then (another change adds them) they
        are set aside with a note. check-config knowing only some of them is a failure: the
        deploy files and the code spell them differently."""
        missing = [n for n in S3_REQUIRED if n not in env]
        self.assertEqual(missing, [], f"{where}: bucket settings missing")
        self.assertEqual(env["REGISTRY_STORAGE"], "s3", where)
        bucket = sorted(n for n in env if is_bucket_setting(n))
        unknown = [n for n in bucket if n not in self.known]
        if unknown and len(unknown) < len(bucket):
            self.fail(f"{where}: check-config knows {sorted(set(bucket) - set(unknown))} "
                      f"but not {unknown}")
        if unknown:
            print(f"\nNOTE: check-config does not know the bucket settings yet: {where} "
                  f"checked without {', '.join(unknown)}", file=sys.stderr)
            env = {k: v for k, v in env.items() if k not in unknown}
        self.assert_valid_settings(env, where)

    def assert_haproxy_accepts(self, text, where):
        """`haproxy -c` passes; its only warnings are node names that do not resolve here."""
        cfg = os.path.join(self.work, "haproxy-check.cfg")
        with open(cfg, "w") as f:
            f.write(text)
        r = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True,
                           timeout=60)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, f"{where}:\n{out}")
        warnings = [line for line in out.splitlines() if "[WARNING]" in line
                    and "could not resolve address" not in line]
        self.assertEqual(warnings, [], where)

    def assert_server_ids(self, servers, where):
        """Each server has its own explicit id: the consistent-hash ring is built from the
        ids, so a node keeps its keys when another line is added or removed."""
        ids = [re.search(r"\bid (\d+)\b", rest) for _, _, rest in servers]
        self.assertTrue(all(ids), f"{where}: a server line without an id")
        self.assertEqual(len({m.group(1) for m in ids}), len(servers), f"{where}: ids repeat")

    def test_cluster_haproxy_config(self):
        self.require("haproxy")
        text = read(os.path.join(CLUSTER, "haproxy.cfg"))
        self.assert_haproxy_accepts(text, "deploy/cluster/haproxy.cfg")
        servers = haproxy_servers(text)
        self.assertEqual([name for name, _, _ in servers],
                         ["hubcache-1", "hubcache-2", "hubcache-3"])
        self.assert_server_ids(servers, "deploy/cluster/haproxy.cfg")
        self.assertRegex(text, r"(?m)^\s*hash-type consistent\b")
        self.assertRegex(text, r"(?m)^\s*balance hash var\(txn\.hubcache_key\)")
        self.assertRegex(text, r"(?m)^\s*http-check send meth GET uri /readyz\b")

    def test_cluster_nginx_config(self):
        self.require("nginx")
        text = read(os.path.join(CLUSTER, "nginx.conf"))
        self.assertEqual(len(nginx_servers(text)), 3)
        for directive in ("hash $hubcache_key consistent;", "proxy_buffering off;",
                          "proxy_request_buffering off;", "client_max_body_size 0;"):
            self.assertIn(directive, text)
        d = os.path.join(self.work, "nginx-t")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:  # the node names do not resolve here, and nginx needs them
            f.write(nginx_adapted(text, 5000, (5001, 5002, 5003), d))
        r = subprocess.run([*nginx_args(d, conf), "-t"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("[warn]", r.stderr)

    def test_cluster_compose_file(self):
        import yaml
        path = os.path.join(CLUSTER, "docker-compose.yaml")
        doc = yaml.safe_load(read(path))
        services = doc["services"]
        nodes = sorted(n for n in services if n.startswith("hubcache-"))
        self.assertEqual(nodes, ["hubcache-1", "hubcache-2", "hubcache-3"])
        envs, l1 = {}, {}
        grace = duration_s(self.known["HUBCACHE_SHUTDOWN_GRACE"]["default"])
        for name in nodes:
            svc = services[name]
            env = {k: compose_interpolate(str(v), COMPOSE_DOTENV)
                   for k, v in svc["environment"].items()}
            envs[name] = env
            root = env["REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"]
            mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
            self.assertIn(root, mounts, f"{name}: the L1 cache is not on a volume")
            self.assertIn(mounts[root], doc["volumes"], f"{name}: not a named volume")
            l1[name] = mounts[root]
            self.assertNotIn("ports", svc, f"{name}: clients go through the balancer")
            self.assertEqual(svc["build"]["dockerfile"], "deploy/Dockerfile")
            self.assertTrue(os.path.exists(os.path.join(CLUSTER, svc["build"]["context"],
                                                        svc["build"]["dockerfile"])))
            self.assertGreater(duration_s(svc["stop_grace_period"]), grace)
        self.assertEqual(len(set(l1.values())), len(nodes), "each node needs its own L1 volume")
        env = envs[nodes[0]]
        self.assertTrue(all(e == env for e in envs.values()), "the nodes' settings differ")
        self.assert_valid_node_settings(env, "deploy/cluster/docker-compose.yaml node")
        self.assertTrue(env.get("HUBCACHE_HOSTED"), "the example hosts no repository")
        cap = int(env.get("HUBCACHE_MAX_CONNECTIONS",
                          self.known["HUBCACHE_MAX_CONNECTIONS"]["default"]))
        self.assertGreaterEqual(int(env["HUBCACHE_MAX_CONNECTIONS_PER_CLIENT"]), cap,
                                "every client arrives from the balancer's address")

        lb = services["balancer"]
        self.assertTrue(lb["image"].startswith("haproxy:2."), lb["image"])
        (cfg,) = [v.split(":")[0] for v in lb["volumes"]
                  if v.split(":")[1] == HAPROXY_IMAGE_CONFIG]
        self.assertEqual(os.path.normpath(os.path.join(CLUSTER, cfg)),
                         os.path.join(CLUSTER, "haproxy.cfg"))
        self.assertIn("5000:5000", [str(p) for p in lb["ports"]])
        self.assertEqual(sorted(lb["depends_on"]), nodes)
        port = env["REGISTRY_HTTP_ADDR"].rsplit(":", 1)[1]
        self.assertEqual(sorted(addr for _, addr, _ in haproxy_servers(read(
            os.path.join(CLUSTER, "haproxy.cfg")))), [f"{n}:{port}" for n in nodes])
        has_compose = shutil.which("docker") is not None and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
        if has_compose:
            dotenv = os.path.join(self.work, "cluster.env")
            with open(dotenv, "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in COMPOSE_DOTENV.items())
            r = subprocess.run(["docker", "compose", "--env-file", dotenv, "-f", path,
                                "config", "--quiet"], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_kubernetes_cluster_manifest(self):
        import yaml
        docs = [d for d in yaml.safe_load_all(read(CLUSTER_K8S)) if d]
        by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
        labels = sts["spec"]["selector"]["matchLabels"]
        self.assertLessEqual(labels.items(),
                             sts["spec"]["template"]["metadata"]["labels"].items())
        headless = by[("Service", sts["spec"]["serviceName"])]["spec"]
        self.assertEqual(headless["clusterIP"], "None", "the balancer addresses each pod")
        self.assertEqual(headless["selector"], labels)
        self.assertTrue(headless.get("publishNotReadyAddresses"))
        pod = sts["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = {e["name"]: e.get("value", "from-a-secret") for e in c["env"]}
        self.assert_valid_node_settings(env, "kubernetes/cluster.yaml node env")
        for name in ("REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY"):
            (e,) = [e for e in c["env"] if e["name"] == name]
            self.assertIn("secretKeyRef", e.get("valueFrom", {}),
                          f"{name} must come from a Secret")
        self.assertGreaterEqual(int(env["HUBCACHE_MAX_CONNECTIONS_PER_CLIENT"]),
                                int(env["HUBCACHE_MAX_CONNECTIONS"]))
        addr_port = int(env["REGISTRY_HTTP_ADDR"].rsplit(":", 1)[1])
        mount = self.assert_probes_and_cache_mount(c, env, addr_port)
        self.assertIn(mount["name"], [t["metadata"]["name"]
                                      for t in sts["spec"]["volumeClaimTemplates"]],
                      "each pod needs its own L1 claim")
        self.assertNotIn(mount["name"], [v["name"] for v in pod.get("volumes", [])])
        grace = duration_s(self.known["HUBCACHE_SHUTDOWN_GRACE"]["default"])
        self.assertGreater(pod["terminationGracePeriodSeconds"], grace)
        (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], labels)

        # The balancer: deploy/cluster/haproxy.cfg with one server line per pod.
        (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
        cfg = cm["data"]["haproxy.cfg"]
        self.assertEqual(haproxy_rules(cfg), haproxy_rules(read(os.path.join(CLUSTER,
                                                                             "haproxy.cfg"))),
                         "the ConfigMap's haproxy.cfg differs from deploy/cluster/haproxy.cfg "
                         "in more than its server lines")
        servers = haproxy_servers(cfg)
        self.assertEqual(len(servers), sts["spec"]["replicas"])
        service = sts["spec"]["serviceName"]
        for i, (_, addr, _) in enumerate(servers):
            self.assertRegex(addr, rf"^{sts['metadata']['name']}-{i}\.{service}\."
                                   rf"[a-z0-9-]+\.svc\.cluster\.local:{addr_port}$")
        self.assert_server_ids(servers, "kubernetes/cluster.yaml ConfigMap")
        if shutil.which("haproxy"):
            self.assert_haproxy_accepts(cfg, "kubernetes/cluster.yaml ConfigMap")
        (lb,) = [d for d in docs if d["kind"] == "Deployment"]
        lb_pod = lb["spec"]["template"]["spec"]
        (hc,) = lb_pod["containers"]
        self.assertTrue(hc["image"].startswith("haproxy:2."), hc["image"])
        (vol,) = [v for v in lb_pod["volumes"] if v.get("configMap", {}).get("name") ==
                  cm["metadata"]["name"]]
        (cm_mount,) = [m for m in hc["volumeMounts"] if m["name"] == vol["name"]]
        self.assertEqual(os.path.join(cm_mount["mountPath"], "haproxy.cfg"),
                         HAPROXY_IMAGE_CONFIG)
        lb_ports = {p["name"]: p["containerPort"] for p in hc["ports"]}
        self.assertEqual(lb_ports.get(hc["readinessProbe"]["httpGet"]["port"]), 8404)
        lb_labels = lb["spec"]["selector"]["matchLabels"]
        (client,) = [d["spec"] for d in docs if d["kind"] == "Service" and
                     d["spec"].get("selector") == lb_labels]
        self.assertEqual(client["ports"][0]["port"], 5000)
        self.assertEqual(lb_ports.get(client["ports"][0]["targetPort"]), 5000)
        self.assertNotEqual(lb_labels, labels, "the client Service must not select the nodes")

    # Dockerfile

    def dockerfile(self):
        return dockerfile_instructions(read(deploy_path("Dockerfile")))

    def test_dockerfile_packages_exist_in_debian(self):
        ins = self.dockerfile()
        froms = [a.split()[0] for i, a in ins if i == "FROM"]
        self.assertGreaterEqual(len(froms), 2, "multi-stage: a build and a runtime stage")
        self.assertTrue(all(f.startswith("debian:bookworm") for f in froms), froms)
        pkgs = [p for i, a in ins if i == "RUN" for p in apt_packages(a)]
        if any("install-deps.sh build" in a for i, a in ins if i == "RUN"):
            pkgs += install_deps_build_packages()
        self.assertTrue(pkgs)
        missing = sorted(set(pkgs) - packages_in_archive(sorted(set(pkgs))))
        self.assertEqual(missing, [], "packages Debian 12 does not have")
        for i, a in ins:
            if i == "COPY" and "--from=" not in a:
                for src in shlex.split(a)[:-1]:
                    self.assertTrue(os.path.exists(os.path.join(REPO_ROOT, src)), src)

    def test_dockerfile_runtime_stage(self):
        ins = self.dockerfile()
        last_from = max(n for n, (i, _) in enumerate(ins) if i == "FROM")
        runtime = ins[last_from:]
        runtime_pkgs = {p for i, a in runtime if i == "RUN" for p in apt_packages(a)}
        self.assertFalse([p for p in runtime_pkgs if p.endswith("-dev")], "-dev in the runtime")
        libs = needed_library_packages(hubcache_bin())
        self.assertIn("libcurl.so.4", libs)
        lacking = {so: pkg for so, pkg in libs.items()
                   if pkg not in runtime_pkgs and pkg not in ("libc6", "libgcc-s1")}
        self.assertEqual(lacking, {}, "libraries the runtime stage does not install")
        users = [a for i, a in runtime if i == "USER"]
        self.assertTrue(users and users[-1].split(":")[0] not in ("root", "0"), users)
        self.assertIn("5000", " ".join(a for i, a in runtime if i == "EXPOSE").split())
        env = {}
        for i, a in runtime:
            if i == "ENV":
                env.update(dict(w.split("=", 1) for w in shlex.split(a)))
        self.assertEqual(env.get("REGISTRY_HTTP_ADDR"), ":5000")
        self.assertEqual(env.get("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"), "/var/lib/registry")
        self.assert_valid_settings(env, "Dockerfile ENV")
        volumes = " ".join(a for i, a in runtime if i == "VOLUME")
        self.assertIn('"/var/lib/registry"', volumes)
        self.assertEqual([a for i, a in runtime if i == "CMD"], ['["serve"]'])

    def test_dockerfile_healthcheck_against_a_mirror(self):
        (hc,) = [a for i, a in self.dockerfile() if i == "HEALTHCHECK"]
        self.assertIn("/healthz", hc)
        cmd = hc.split(" CMD ", 1)[1] if " CMD " in hc else hc.split("CMD ", 1)[1]
        m = Mirror(self.work, f"http://127.0.0.1:{free_port()}")  # no upstream needed
        self.addCleanup(m.stop)
        m.start()
        env = base_env({"REGISTRY_HTTP_ADDR": f"127.0.0.1:{m.port}"})
        r = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, f"healthcheck failed on a healthy mirror: {r.stderr}")
        m.stop()
        r = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(r.returncode, 0, "healthcheck passed with the mirror stopped")

    # client configuration and env.example

    def test_client_configuration_files(self):
        daemon = json.loads(read(deploy_path("daemon.json")))
        for url in daemon["registry-mirrors"]:
            self.assertRegex(url, r"^https?://[^/]+$", "dockerd mirrors are a domain root")
        insecure = set(daemon.get("insecure-registries", []))
        for url in daemon["registry-mirrors"]:
            if url.startswith("http://"):
                self.assertIn(url[len("http://"):], insecure, "plain HTTP needs insecure-registries")
        # One hosts.toml per registry, each naming the same mirror; every registry but
        # Docker Hub is an upstream of deploy/config.yml and a path-prefix mirror of
        # deploy/registries.conf.
        import yaml
        registries = sorted(os.listdir(deploy_path("certs.d")))
        self.assertIn("docker.io", registries)
        config = yaml.safe_load(read(deploy_path("config.yml")))
        upstreams = {u["name"]: u["url"] for u in config["hubcache"]["upstreams"]}
        reg = tomllib.loads(read(deploy_path("registries.conf")))
        by_prefix = {r["prefix"]: r for r in reg["registry"]}
        mirror_hosts = set()
        for registry in registries:
            text = read(deploy_path("certs.d", registry, "hosts.toml"))
            hosts = tomllib.loads(text)
            self.assertIn(f"/etc/containerd/certs.d/{registry}/hosts.toml", text)
            ((host, entry),) = hosts["host"].items()
            self.assertEqual(sorted(entry["capabilities"]), ["pull", "resolve"])
            mirror_hosts.add(host.split("://", 1)[1])
            if registry == "docker.io":
                self.assertEqual(hosts["server"], "https://registry-1.docker.io")
                continue
            self.assertEqual(hosts["server"], f"https://{registry}")
            self.assertEqual(upstreams.get(registry), f"https://{registry}")
            self.assertEqual([m["location"] for m in by_prefix[registry]["mirror"]],
                             [f"{host.split('://', 1)[1]}/{registry}"])
        self.assertEqual(set(upstreams), set(registries) - {"docker.io"})
        docker = by_prefix["docker.io"]
        self.assertEqual(docker["location"], "registry-1.docker.io")
        self.assertTrue(docker["mirror"] and all(m["location"] for m in docker["mirror"]))
        mirror_hosts |= {m["location"] for m in docker["mirror"]}
        # The shipped config.yml is valid and hubcache uses every key of it.
        r = check_config(deploy_path("config.yml"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"{len(upstreams)} upstreams, 0 keys ignored", r.stdout)
        mirror_hosts |= {u.split("://", 1)[1] for u in daemon["registry-mirrors"]}
        self.assertEqual(len(mirror_hosts), 1, f"the files name different mirrors: {mirror_hosts}")

    def test_env_example_is_generated_from_the_code(self):
        r = check_config("--env-example")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(read(deploy_path("env.example")), r.stdout,
                         "deploy/env.example is stale: regenerate it with "
                         "`hubcache check-config --env-example > deploy/env.example`")
        for name in self.known:
            self.assertIn(f"\n#{name}=", r.stdout)
        r = check_config("--env-file", deploy_path("env.example"))
        self.assertEqual(r.returncode, 0, r.stderr)
        # Every default uncommented is a valid file that changes nothing.
        uncommented = os.path.join(self.work, "env.uncommented")
        with open(uncommented, "w") as f:
            f.write(re.sub(r"^#([A-Z][A-Z0-9_]*=.+)$", r"\1", read(deploy_path("env.example")),
                           flags=re.M))
        r = check_config("--env-file", uncommented, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([row["env"] for row in json.loads(r.stdout)
                          if row["value"] != row["default"]], [])


# -- the balancers' key ---------------------------------------------------------------------

# A stand-in for a hubcache node: answers every request 200 with its own name (X-Node,
# and as the body) and how many body bytes reached it (X-Body-Bytes); logs each request
# line to stderr. Its port goes to a file once it listens.
NODE_SCRIPT = r"""
import http.server, os, sys

NAME, PORT_FILE = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall

    def body_bytes(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return len(self.rfile.read(length)) if length else 0

    def answer(self, with_body=True):
        got = self.body_bytes()
        body = NAME.encode()
        self.send_response(200)
        self.send_header("X-Node", NAME)
        self.send_header("X-Body-Bytes", str(got))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def do_HEAD(self):
        self.answer(with_body=False)

    def log_request(self, code="-", size="-"):
        sys.stderr.write(self.requestline + "\n")
        sys.stderr.flush()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
"""


class FakeNode:
    """NODE_SCRIPT in its own process on a loopback port."""

    def __init__(self, work, name):
        self.name = name
        self.port = None
        self.proc = None
        self.log_path = os.path.join(work, f"{name}.log")
        self.port_file = os.path.join(work, f"{name}.port")
        self.script = os.path.join(work, "fake_node.py")
        if not os.path.exists(self.script):
            with open(self.script, "w") as f:
                f.write(NODE_SCRIPT)

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, self.script, self.name, self.port_file],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_until(lambda: os.path.exists(self.port_file) or self.proc.poll() is not None, 10,
                   f"{self.name} to listen")
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {read(self.log_path)[-2000:]}")
        self.port = int(read(self.port_file))

    def stop(self):
        stop_process(self.proc)

    def request_lines(self):
        return read(self.log_path).splitlines() if os.path.exists(self.log_path) else []


class NginxBalancer:
    """deploy/cluster/nginx.conf, unchanged but for its port, server addresses and temp
    paths. `nodes` follow its server lines; None leaves that line out."""
    tool = "nginx"

    def __init__(self, work, nodes, tag="nginx"):
        self.nodes, self.proc = nodes, None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = os.path.join(work, tag)
        os.makedirs(self.dir)
        self.log_path = os.path.join(self.dir, "nginx.log")
        self.workers = []

    def start(self):
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_adapted(read(os.path.join(CLUSTER, "nginx.conf")), self.port,
                                  [n and n.port for n in self.nodes], self.dir))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(nginx_args(self.dir, conf, foreground=True), stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL)

        def answers():
            if self.proc.poll() is not None:
                return True
            try:
                return harness.request(self.url, "GET", "/v2/", timeout=5).status == 200
            except (OSError, http.client.HTTPException):
                return False
        wait_until(answers, 20, "nginx to answer")
        if self.proc.poll() is not None:
            raise AssertionError(f"nginx exited: {read(self.log_path)[-3000:]}")
        # The workers, to stop by pid should the master not take them down with it.
        children = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        if os.path.exists(children):
            self.workers = [int(p) for p in read(children).split()]

    def wait_out(self, node):
        pass  # passive checks: the first request that fails moves on to the next node

    def node_label(self, node):
        return f"127.0.0.1:{node.port}"  # X-Hubcache-Node: $upstream_addr

    def stop(self):
        stop_process(self.proc)  # SIGTERM: the master stops its workers, then exits
        for pid in self.workers:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def blob_digest(i):
    """The i-th of a fixed series of random-looking digests."""
    return "sha256:" + hashlib.sha256(f"hubcache-cluster-blob-{i}".encode()).hexdigest()


class BalancerKey:
    """The shipped balancer configuration in front of three FakeNodes: where each kind of
    request goes. A subclass names the balancer."""
    BALANCER = None
    NODE_NAMES = ("hubcache-1", "hubcache-2", "hubcache-3")

    def setUp(self):
        tool = self.BALANCER.tool
        if shutil.which(tool) is None:
            reason = f"{tool} not installed (scripts/install-deps.sh all)"
            SKIPPED.append(reason)
            self.skipTest(reason)
        self.work, cleanup = harness.module_workdir(f"deploy-{tool}")
        self.addCleanup(cleanup)
        self.nodes = [FakeNode(self.work, name) for name in self.NODE_NAMES]
        for node in self.nodes:
            self.addCleanup(node.stop)
            node.start()
        self.lb = self.BALANCER(self.work, self.nodes)
        self.addCleanup(self.lb.stop)
        self.lb.start()

    def node_of(self, method, path, body=None, headers=None):
        """The name of the node that answered `method path` through the balancer."""
        r = harness.request(self.lb.url, method, path, body=body, headers=headers, timeout=20)
        self.assertEqual(r.status, 200, f"{method} {path}: {r}")
        name = r.header("X-Node")
        self.assertIn(name, self.NODE_NAMES, r)
        self.assertEqual(int(r.header("X-Body-Bytes")), len(body or b""),
                         f"{method} {path}: the body did not reach the node whole")
        (node,) = [n for n in self.nodes if n.name == name]
        tried = (r.header("X-Hubcache-Node") or "").split(", ")
        self.assertEqual(tried[-1], self.lb.node_label(node), f"{method} {path}: {r}")
        return name

    def test_a_blob_has_one_node_whatever_the_repository_names_it(self):
        homes = set()
        for i in range(20):
            d = blob_digest(i)
            seen = {self.node_of("GET", f"/v2/library/alpine/blobs/{d}"),
                    self.node_of("HEAD", f"/v2/team/sub/app/blobs/{d}"),
                    self.node_of("GET", f"/v2/alpine/blobs/{d}?ns=docker.io"),
                    self.node_of("GET", f"/v2/a/blobs/b/blobs/{d}")}
            self.assertEqual(len(seen), 1, f"{d} reached {seen}")
            homes |= seen
        self.assertGreater(len(homes), 1, "one repository's blobs all on one node: the key "
                                          "is not the digest")

    def test_an_upload_and_its_manifest_stay_on_the_repository_node(self):
        homes = set()
        for i, repo in enumerate(["team/app", "library/alpine", "team/sub/app", "chatsuite/api",
                                  "a/blobs/uploads", "ci/build-7", "x/manifests/y", "solo"]):
            d, upload = blob_digest(1000 + i), f"{i:08x}-6b3c-4a2e-9f0d-{i:012x}"
            seen = {
                self.node_of("POST", f"/v2/{repo}/blobs/uploads/"),
                self.node_of("PATCH", f"/v2/{repo}/blobs/uploads/{upload}", body=b"x" * 70000,
                             headers={"Content-Range": "0-69999",
                                      "Content-Type": "application/octet-stream"}),
                self.node_of("GET", f"/v2/{repo}/blobs/uploads/{upload}"),
                self.node_of("PUT", f"/v2/{repo}/blobs/uploads/{upload}?digest={d}",
                             body=b"tail"),
                self.node_of("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", body=b"whole"),
                self.node_of("POST", f"/v2/{repo}/blobs/uploads/?mount={d}&from=team/other"),
                self.node_of("DELETE", f"/v2/{repo}/blobs/uploads/{upload}"),
                self.node_of("PUT", f"/v2/{repo}/manifests/v1", body=b'{"schemaVersion":2}',
                             headers={"Content-Type": harness.MEDIA_OCI_MANIFEST}),
                self.node_of("GET", f"/v2/{repo}/manifests/v1"),
                self.node_of("HEAD", f"/v2/{repo}/manifests/v1?ns=docker.io"),
                self.node_of("GET", f"/v2/{repo}/manifests/{d}"),
                self.node_of("DELETE", f"/v2/{repo}/manifests/{d}"),
                self.node_of("DELETE", f"/v2/{repo}/blobs/{d}"),
                self.node_of("GET", f"/v2/{repo}/tags/list?n=10&last=v0"),
                self.node_of("GET", f"/v2/{repo}/referrers/{d}?artifactType=x"),
            }
            self.assertEqual(len(seen), 1, f"{repo}'s requests reached {seen}")
            homes |= seen
        self.assertGreater(len(homes), 1, "every repository on one node: the key is constant")

    def test_the_query_string_is_not_part_of_the_key(self):
        for i in range(20):
            for path in (f"/v2/library/alpine/blobs/{blob_digest(i)}",
                         f"/v2/team/app{i}/manifests/latest"):
                seen = {self.node_of("GET", path + q)
                        for q in ("", "?ns=docker.io", "?ns=docker.io&x=/blobs/y", "?")}
                self.assertEqual(len(seen), 1, f"{path} reached {seen}")

    def test_digests_spread_over_every_node(self):
        counts = {name: 0 for name in self.NODE_NAMES}
        for i in range(100):
            counts[self.node_of("GET", f"/v2/library/alpine/blobs/{blob_digest(i)}")] += 1
        self.assertTrue(all(n >= 15 for n in counts.values()), counts)

    def test_requests_of_no_repository_go_to_any_node(self):
        seen = set()
        for _ in range(6):
            for path in ("/v2/", "/v2/_catalog", "/stats", "/metrics", "/", "/admin/prewarm"):
                seen.add(self.node_of("GET", path))
        self.assertGreater(len(seen), 1, "every request without a key went to one node")

    def test_a_stopped_node_moves_only_its_own_keys(self):
        keys = [("GET", f"/v2/library/alpine/blobs/{blob_digest(i)}") for i in range(60)]
        keys += [("GET", f"/v2/team/app{i}/manifests/v1") for i in range(30)]
        before = {k: self.node_of(*k) for k in keys}
        victim = self.nodes[1]
        self.assertIn(victim.name, before.values(), "the stopped node owned no key")
        victim.stop()
        self.lb.wait_out(victim)
        after = {k: self.node_of(*k) for k in keys}
        moved = [k for k in keys if before[k] != victim.name and after[k] != before[k]]
        self.assertEqual(moved, [], "keys of the nodes still up moved")
        self.assertEqual([k for k in keys if after[k] == victim.name], [])

    def test_a_node_left_out_of_the_configuration_moves_only_its_own_keys(self):
        # What consistent hashing adds over a plain hash: the other nodes keep their keys
        # when one is removed from (or added to) the configuration, not only when it fails.
        keys = [("GET", f"/v2/library/alpine/blobs/{blob_digest(i)}") for i in range(60)]
        keys += [("GET", f"/v2/team/app{i}/manifests/v1") for i in range(30)]
        before = {k: self.node_of(*k) for k in keys}
        victim = self.nodes[1]
        self.assertIn(victim.name, before.values(), "the node left out owned no key")
        self.lb.stop()
        self.lb = self.BALANCER(self.work, [None if n is victim else n for n in self.nodes],
                                tag="without-" + victim.name)
        self.addCleanup(self.lb.stop)
        self.lb.start()
        after = {k: self.node_of(*k) for k in keys}
        moved = [k for k in keys if before[k] != victim.name and after[k] != before[k]]
        self.assertEqual(moved, [], "keys of the nodes still configured moved")
        self.assertEqual([k for k in keys if after[k] == victim.name], [])


class HaproxyKey(BalancerKey, unittest.TestCase):
    BALANCER = HaproxyBalancer

    def test_each_node_is_checked_on_readyz(self):
        for node in self.nodes:
            wait_until(lambda: any(line.startswith("GET /readyz ")
                                   for line in node.request_lines()), 10,
                       f"a /readyz check on {node.name}")


    def test_a_dead_node_s_reads_move_before_its_check_fails(self):
        # retry-on conn-failure with redispatch: no client waits for the health check.
        keys = [f"/v2/library/alpine/blobs/{blob_digest(i)}" for i in range(60)]
        before = {k: self.node_of("GET", k) for k in keys}
        victim = self.nodes[1]
        victim.stop()
        stopped = time.monotonic()
        for k in (k for k in keys if before[k] == victim.name):
            self.assertNotEqual(self.node_of("GET", k), victim.name)
        # DOWN takes two failed checks 2 s apart (inter 2s fall 2): before 1.5 s, the
        # requests above cannot have been helped by it.
        if time.monotonic() - stopped < 1.5:
            self.assertFalse(self.lb.states()[victim.name].startswith("DOWN"))


class NginxKey(BalancerKey, unittest.TestCase):
    BALANCER = NginxBalancer


# -- check-config ---------------------------------------------------------------------------

class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.work, cleanup = harness.module_workdir("deploy-cc")
        self.addCleanup(cleanup)

    def test_valid_configuration_lists_every_setting(self):
        known = settings()
        r = check_config()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        for name, row in known.items():
            self.assertRegex(r.stdout, rf"(?m)^  {name}\s+{re.escape(row['flag'])}\s")
        self.assertTrue(all(not row["secret"] or row["value"] == "" for row in known.values()))
        self.assertTrue({"REGISTRY_PROXY_PASSWORD", "HUBCACHE_ADMIN_TOKEN"} <=
                        {n for n, row in known.items() if row["secret"]})

    def test_secrets_are_masked(self):
        envfile = os.path.join(self.work, "env")
        with open(envfile, "w") as f:
            f.write(f"# comment\nexport REGISTRY_PROXY_USERNAME=hubuser\n"
                    f"HUBCACHE_ADMIN_TOKEN='{SECRET}-admin'\n")
        ways = [
            ({"REGISTRY_PROXY_PASSWORD": SECRET}, []),
            ({}, ["--upstream-password", SECRET]),
            ({}, [f"--upstream-password={SECRET}", "--env-file", envfile]),
        ]
        for env, args in ways:
            for fmt in ([], ["--json"]):
                with self.subTest(env=list(env), args=args[:1], fmt=fmt):
                    r = check_config(*fmt, *args, env=env)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    out = r.stdout + r.stderr
                    self.assertNotIn(SECRET, out)
                    self.assertNotIn(SECRET[:12], out)
                    self.assertIn("********", out)
                    if fmt:
                        rows = {row["env"]: row for row in json.loads(r.stdout)}
                        self.assertEqual(rows["REGISTRY_PROXY_PASSWORD"]["value"], "********")
                        self.assertTrue(rows["REGISTRY_PROXY_PASSWORD"]["secret"])
                        if "--env-file" in args:
                            self.assertEqual(rows["REGISTRY_PROXY_USERNAME"]["value"], "hubuser")
                            self.assertEqual(rows["HUBCACHE_ADMIN_TOKEN"]["value"], "********")

    def test_flags_win_and_values_read_back(self):
        env = {"REGISTRY_HTTP_ADDR": ":6000", "HUBCACHE_CACHE_MAX_SIZE": "1.5G",
               "HUBCACHE_TAG_FRESHNESS": "90", "HUBCACHE_MIN_FREE": "0.025",
               "REGISTRY_LOG_LEVEL": "debug"}
        rows = settings(env, ["--addr", "127.0.0.1:7000", "--max-connections=32"])
        self.assertEqual(rows["REGISTRY_HTTP_ADDR"]["value"], "127.0.0.1:7000")
        self.assertEqual(rows["HUBCACHE_MAX_CONNECTIONS"]["value"], "32")
        self.assertEqual(rows["HUBCACHE_CACHE_MAX_SIZE"]["value"], "1536MiB")
        self.assertEqual(rows["HUBCACHE_TAG_FRESHNESS"]["value"], "90s")
        self.assertEqual(rows["HUBCACHE_MIN_FREE"]["value"], "2.5%")
        # What check-config prints is accepted back, and means the same.
        again = []
        for row in rows.values():
            if row["value"] and not row["secret"]:
                again += [row["flag"], row["value"]]
        self.assertEqual(settings(None, again), rows)

    def test_invalid_configuration_exits_2_with_one_line(self):
        bad_env = os.path.join(self.work, "bad.env")
        with open(bad_env, "w") as f:
            f.write("REGISTRY_HTTP_ADDR=:5000\nthis line is not an assignment\n")
        cases = [
            ({"REGISTRY_HTTP_ADDR": "nonsense"}, [], "REGISTRY_HTTP_ADDR"),
            ({}, ["--max-connections", "2"], "max-connections"),
            ({}, ["--cache-max-size", "12 parsecs"], "cache-max-size"),
            ({"HUBCACHE_ADMIN_TOKEN": "short"}, [], "HUBCACHE_ADMIN_TOKEN"),
            ({"REGISTRY_PROXY_PASSWORD": SECRET}, ["--no-such-flag", "1"], "unknown option"),
            ({}, ["--env-file", bad_env], "bad.env:2"),
            ({}, ["--env-file", os.path.join(self.work, "missing.env")], "cannot read"),
            ({}, ["--env-file"], "needs a value"),
        ]
        for env, args, mention in cases:
            with self.subTest(env=env, args=args):
                r = check_config(*args, env=env)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn(mention, lines[0])
                self.assertEqual(r.stdout, "")
                self.assertNotIn(SECRET, r.stderr)

    def test_registry_settings_hubcache_does_not_read_are_noted(self):
        r = check_config(env={"REGISTRY_STORAGE_DELETE_ENABLED": "true",
                              "REGISTRY_PROXY_TTL": "168h",
                              "REGISTRY_HTTP_SECRET": "s",
                              "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": "inmemory"})
        self.assertEqual(r.returncode, 0, r.stderr)
        # REGISTRY_STORAGE_DELETE_ENABLED is read (hosted repositories' deletes), and
        # REGISTRY_PROXY_TTL (the age limit of cached content).
        self.assertEqual(sorted(unknown_names(r.stderr)),
                         ["REGISTRY_HTTP_SECRET", "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR"])


# -- README ---------------------------------------------------------------------------------

def readme_reference_rows():
    """(flag, env, default cell) of each row of the README table headed flag|environment|..."""
    rows, in_table = [], False
    for line in read(README).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if \
            line.startswith("|") else None
        if cells and [c.lower() for c in cells[:3]] == ["flag", "environment", "default"]:
            in_table = True
            continue
        if not in_table:
            continue
        if cells is None:
            if rows:
                break
            continue
        if set(cells[0]) <= set("-: "):
            continue
        flag, env = re.findall(r"`([^`]+)`", cells[0]), re.findall(r"`([^`]+)`", cells[1])
        rows.append((flag[0] if flag else cells[0], env[0] if env else cells[1], cells[2]))
    return rows


class ReadmeReference(unittest.TestCase):
    def test_ci_runs_exactly_the_readme_test_command(self):
        # Quick start's two sh blocks: start the mirror, then install, build and test.
        quick = read(README).split("## Quick start", 1)[1].split("\n## ", 1)[0]
        blocks = re.findall(r"```sh\n(.*?)```", quick, flags=re.S)
        self.assertEqual(len(blocks), 2, "README's Quick start should give exactly two commands")
        readme_test = blocks[1].strip()
        ci = [line for line in read(os.path.join(REPO_ROOT, ".ci", "run")).splitlines()
              if line.strip() and not line.startswith("#")]
        self.assertEqual(ci, [readme_test], ".ci/run must run the README's test command, only it")
        self.assertEqual(blocks[0].strip(), "./scripts/run.sh")

    def test_readme_table_and_code_list_the_same_settings(self):
        rows = readme_reference_rows()
        self.assertGreater(len(rows), 5, "README configuration table not found")
        known = settings()
        readme_env = [env for _, env, _ in rows]
        self.assertEqual(sorted(set(known) - set(readme_env)), [],
                         "settings the code reads that the README table lacks")
        self.assertEqual(sorted(set(readme_env) - set(known)), [],
                         "README table rows that are not settings")
        self.assertEqual(len(readme_env), len(set(readme_env)), "a setting listed twice")
        for flag, env, default in rows:
            with self.subTest(env=env):
                self.assertEqual(flag, known[env]["flag"])
                if known[env]["default"]:
                    self.assertIn(f"`{known[env]['default']}`", default,
                                  f"README default of {env} differs from the code's")
                else:
                    self.assertNotIn("`", default, f"{env} has no default in the code")

    def test_readme_settings_are_accepted_by_check_config(self):
        rows = readme_reference_rows()
        known = settings()
        env, args = {}, []
        for flag, name, _ in rows:
            value = known.get(name, {}).get("default")
            if value:
                env[name] = value
                args += [flag, value]
        r = check_config(env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(unknown_names(r.stderr), [])
        r = check_config(*args)
        self.assertEqual(r.returncode, 0, r.stderr)
        for flag, name, _ in rows:  # a flag the code does not know is an error, not ignored
            r = check_config(flag, known.get(name, {}).get("default") or "x")
            self.assertNotIn("unknown option", r.stderr, flag)


def main():
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if not os.path.exists(hubcache_bin()):
        print(f"hubcache binary not found at {hubcache_bin()}", file=sys.stderr)
        sys.exit(1)
    started = time.monotonic()
    prog = unittest.main(exit=False, verbosity=2)
    print(f"test_deploy.py: {time.monotonic() - started:.1f}s", file=sys.stderr)
    if not prog.result.wasSuccessful():
        sys.exit(1)
    if SKIPPED:
        print("SKIP (part of the module): " + "; ".join(SKIPPED), file=sys.stderr)
        sys.exit(77)
    sys.exit(0)


if __name__ == "__main__":
    main()
