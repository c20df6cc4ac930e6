"""deploy/cluster/haproxy.cfg run on loopback, in front of nodes the test started.

  haproxy_servers()   the `server` lines of an HAProxy configuration
  haproxy_rules()     the configuration without comments, blank lines and server lines
  servers_at()        a configuration's server addresses moved to given loopback ports
  haproxy_adapted()   the shipped file moved to loopback ports, its servers at given
                      ports, optionally a shorter health-check interval
  HaproxyBalancer     `haproxy -db` on such a file: start() waits for every node UP,
                      states() reads its /stats CSV, wait_out()/wait_up() a node's state,
                      stop() by PID
  stop_process()      SIGTERM to one Popen, SIGKILL after a timeout, reaped

Used by test_deploy (stand-in nodes) and s3_cluster_cases (hubcache nodes on a bucket).
A node is anything with `name` (its server line's name: hubcache-1, hubcache-2, ...) and
`port`.
"""
import http.client
import os
import re
import subprocess

import harness
from mirror import REPO_ROOT, free_port, wait_until

HAPROXY_CFG = os.path.join(REPO_ROOT, "deploy", "cluster", "haproxy.cfg")


def stop_process(proc, timeout_s=10):
    """SIGTERM to `proc` (by its pid), SIGKILL after timeout_s; then reaps it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def haproxy_servers(text):
    """[(name, address, the rest)] of the `server` lines of an HAProxy configuration."""
    return re.findall(r"(?m)^[ \t]*server[ \t]+(\S+)[ \t]+(\S+)(.*)$", text)


def haproxy_rules(text):
    """The configuration without comments, blank lines and `server` lines."""
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "server "))]


def servers_at(text, server_re, node_ports, what):
    """`text` with the address of each match of `server_re` (group 1: what stands before
    the address, group 2: after it) replaced by 127.0.0.1:node_ports in order; a match
    whose port is None is left out. Raises unless the matches are one per port (`what`
    names them in the message, e.g. "haproxy.cfg server lines")."""
    servers = iter(node_ports)

    def server(m):
        p = next(servers)
        return "" if p is None else f"{m.group(1)}127.0.0.1:{p}{m.group(2)}"
    text, n = re.subn(server_re, server, text)
    if n != len(node_ports):
        raise AssertionError(f"{what}: {n} in the file, the test has {len(node_ports)}")
    return text


def haproxy_adapted(text, port, monitor_port, node_ports, check_inter=None):
    """The configuration listening on loopback ports, its servers at 127.0.0.1:node_ports
    in order (a server whose port is None is left out). check_inter (e.g. "500ms")
    replaces the `inter` of the default-server line: a dead node is then out after
    `fall` times it instead of seconds."""
    text = servers_at(text, r"(?m)^([ \t]*server[ \t]+\S+[ \t]+)\S+(.*)$", node_ports,
                      "haproxy.cfg server lines")
    for shipped, here in ((":5000", port), (":8404", monitor_port)):
        text, n = re.subn(rf"(?m)^([ \t]*bind[ \t]+){shipped}\b", rf"\g<1>127.0.0.1:{here}",
                          text)
        if n != 1:
            raise AssertionError(f"haproxy.cfg: no `bind {shipped}` line to move to loopback")
    if check_inter is not None:
        text, n = re.subn(r"(?m)^([ \t]*default-server\b.*[ \t]inter[ \t]+)\S+",
                          rf"\g<1>{check_inter}", text)
        if n != 1:
            raise AssertionError("haproxy.cfg: no `default-server ... inter` to shorten")
    return text


class HaproxyBalancer:
    """deploy/cluster/haproxy.cfg, unchanged but for its ports, server addresses and
    (check_inter) its health-check interval. `nodes` follow its server lines; None
    leaves that line out."""
    tool = "haproxy"

    def __init__(self, work, nodes, tag="haproxy", check_inter=None):
        self.work, self.nodes, self.proc = os.path.join(work, tag), nodes, None
        os.makedirs(self.work)
        self.port, self.monitor_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(self.work, "haproxy.log")
        self.check_inter = check_inter

    def start(self):
        cfg = os.path.join(self.work, "haproxy.cfg")
        with open(HAPROXY_CFG, encoding="utf-8") as f:
            shipped = f.read()
        with open(cfg, "w") as f:
            f.write(haproxy_adapted(shipped, self.port, self.monitor_port,
                                    [n and n.port for n in self.nodes], self.check_inter))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL)
        names = {n.name for n in self.nodes if n}
        wait_until(lambda: self.proc.poll() is not None or
                   {n for n, s in self.states().items() if s.startswith("UP")} >= names,
                   20, "HAProxy to listen with every node UP")
        if self.proc.poll() is not None:
            raise AssertionError(f"haproxy exited: {self.log()[-3000:]}")

    def log(self):
        return harness.read_text(self.log_path)

    def states(self):
        """{server name: status} from the balancer's /stats CSV; {} when it does not answer."""
        try:
            r = harness.request(f"http://127.0.0.1:{self.monitor_port}", "GET", "/stats;csv",
                                timeout=5)
        except (OSError, http.client.HTTPException):
            return {}
        if r.status != 200:
            return {}
        lines = r.body.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {row["svname"]: row["status"] for row in rows if row["pxname"] == "hubcache"
                and row["svname"] not in ("BACKEND", "FRONTEND")}

    def wait_out(self, node, timeout_s=20):
        wait_until(lambda: self.states().get(node.name, "").startswith("DOWN"), timeout_s,
                   f"HAProxy to mark {node.name} DOWN")

    def wait_up(self, node, timeout_s=20):
        wait_until(lambda: self.states().get(node.name, "").startswith("UP"), timeout_s,
                   f"HAProxy to mark {node.name} UP")

    def node_label(self, node):
        return node.name  # X-Hubcache-Node: the server line's name

    def stop(self):
        stop_process(self.proc)
