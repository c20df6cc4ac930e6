"""Starts and stops a hubcache process for integration tests.

Every test owns its mirror: a fresh cache root under the test's temp dir, a free
loopback port, and a PID it stops itself. The binary comes from $HUBCACHE_BIN
(set by meson), falling back to build/hubcache for runs by hand.
"""
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def hubcache_bin():
    return os.environ.get("HUBCACHE_BIN", os.path.join(REPO_ROOT, "build", "hubcache"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout_s, what):
    """Polls predicate until it returns truthy or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


class Mirror:
    """A running `hubcache serve` on 127.0.0.1."""

    def __init__(self, workdir, upstream_url, extra_args=(), env=None, root=None):
        self.workdir = workdir
        self.root = root or os.path.join(workdir, "cache")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, f"hubcache-{self.port}.log")
        self.args = [hubcache_bin(), "serve", "--addr", f"127.0.0.1:{self.port}",
                     "--upstream", upstream_url, "--root", self.root,
                     "--log-level", "debug", *extra_args]
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("REGISTRY_") or (k.startswith("HUBCACHE_") and k != "HUBCACHE_BIN"):
                del self.env[k]
        self.env.update(env or {})
        self.proc = None

    def start(self, timeout_s=20):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"hubcache exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/v2/", timeout=1) as r:
                    return r.status == 200
            except urllib.error.HTTPError as e:
                return e.code == 401
            except OSError:
                return False

        wait_until(ready, timeout_s, "hubcache to answer /v2/")
        return self

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def peak_rss_kib(self):
        """VmHWM of the process: its peak resident set size so far."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("VmHWM not found")

    def stop(self, sig=signal.SIGTERM, timeout_s=15):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
