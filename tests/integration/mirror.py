"""Starts and stops a hubcache process for integration tests.

Every test owns its mirror: a fresh cache root under the test's temp dir, a free
loopback port, and a PID it stops itself. The binary comes from $HUBCACHE_BIN
(set by meson), falling back to build/hubcache for runs by hand.

Also: require_hubcache() checks that the binary is there, run_cli() runs a one-shot
subcommand (ls, rm, gc) with a clean environment, parse_gc() reads the report `hubcache gc`
prints, and Mirror.reconcile_report() the `cache opened:` line a server logs at start.
"""
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import harness

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def hubcache_bin():
    return os.environ.get("HUBCACHE_BIN", os.path.join(REPO_ROOT, "build", "hubcache"))


def require_hubcache():
    """Raises when the hubcache binary (hubcache_bin()) is missing or not executable."""
    if not os.access(hubcache_bin(), os.X_OK):
        raise RuntimeError(f"hubcache binary not found or not executable: {hubcache_bin()}")


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


def clean_env(extra=None):
    """os.environ without REGISTRY_* and HUBCACHE_* (except HUBCACHE_BIN), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("REGISTRY_")
                   or (k.startswith("HUBCACHE_") and k != "HUBCACHE_BIN"))}
    env.update(extra or {})
    return env


def run_cli(*args, timeout=120, env=None):
    """`hubcache ARGS...` to completion: a CompletedProcess with text stdout/stderr."""
    return subprocess.run([hubcache_bin(), *args], env=clean_env(env), capture_output=True,
                          text=True, timeout=timeout)


_GC_RE = re.compile(
    r"^(?P<dry>dry run: )?(?:would free|freed) (?P<freed>.+?) in (?P<entries>\d+) entries "
    r"\(temp files (?P<temp>\d+), orphans removed (?P<orphans_removed>\d+), "
    r"corrupt (?P<corrupt>\d+), stale index rows (?P<rows>\d+), "
    r"orphans adopted (?P<adopted>\d+)\)$", re.M)
_GC_CACHE_RE = re.compile(
    r"^cache: (?P<entries>\d+) entries, (?P<size>[^(\n]+?)(?P<note> \(.*\))?$", re.M)


def parse_gc(stdout):
    """The two lines `hubcache gc` prints, as a dict (ints for the counts); raises when absent."""
    m, c = _GC_RE.search(stdout), _GC_CACHE_RE.search(stdout)
    if not m or not c:
        raise AssertionError(f"unexpected `hubcache gc` output:\n{stdout}")
    out = {k: int(v) for k, v in m.groupdict().items() if k not in ("dry", "freed")}
    out.update(dry_run=bool(m["dry"]), freed=m["freed"], cache_entries=int(c["entries"]),
               cache_size=c["size"], server_note=c["note"] or "")
    return out


_live = set()  # Mirrors whose process may still run, for stop_all()


def stop_all(sig=signal.SIGKILL):
    """Stops every Mirror still running (the last resort of an interrupted test run)."""
    for m in list(_live):
        try:
            m.stop(sig)
        except AssertionError:  # a sanitizer report; the run is failing anyway
            pass


_RECONCILE_RE = re.compile(r"cache opened: ((?:\w+=\d+ ?)+)")
# ASan/LSan report headers, and UBSan's "file:line:col: runtime error: ...".
_SANITIZER_RE = re.compile(
    r"^(==\d+==ERROR: (Address|Leak)Sanitizer|\S+:\d+:\d+: runtime error: )", re.M)


class Mirror:
    """A running `hubcache serve` on 127.0.0.1."""

    def __init__(self, workdir, upstream_url, extra_args=(), env=None, root=None, tls=False,
                 port=None):
        self.workdir = workdir
        self.root = root or os.path.join(workdir, "cache")
        # port: a given one (a node started again where a balancer expects it), else free.
        self.port = port or free_port()
        # tls: the mirror serves HTTPS (its args carry the certificate); the
        # readiness probe then does not verify it.
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._probe_context = ssl._create_unverified_context() if tls else None
        self.log_path = os.path.join(workdir, f"hubcache-{self.port}.log")
        self.args = [hubcache_bin(), "serve", "--addr", f"127.0.0.1:{self.port}",
                     "--upstream", upstream_url, "--root", self.root,
                     "--log-level", "debug", *extra_args]
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("REGISTRY_") or (k.startswith("HUBCACHE_") and k != "HUBCACHE_BIN"):
                del self.env[k]
        self.env.update(env or {})
        # Sanitizer builds (scripts/sanitize.sh): the server's reports go to its
        # log (stderr), and stop() raises when the process left one.
        self.sanitized = "ASAN_OPTIONS" in self.env or "UBSAN_OPTIONS" in self.env
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            if var in self.env:
                self.env[var] += ":log_path=stderr"
        self.proc = None

    def start(self, timeout_s=20):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        _live.add(self)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"hubcache exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/v2/", timeout=1,
                                            context=self._probe_context) as r:
                    return r.status == 200
            except urllib.error.HTTPError as e:
                return e.code == 401
            except OSError:
                return False

        wait_until(ready, timeout_s, "hubcache to answer /v2/")
        return self

    def log(self):
        return harness.read_text(self.log_path)

    def reconcile_report(self):
        """The counts of this process's `cache opened: k=v ...` line, or None before it."""
        found = _RECONCILE_RE.findall(self.log())
        if not found:
            return None
        return {k: int(v) for k, v in (kv.split("=") for kv in found[-1].split())}

    def peak_rss_kib(self):
        """VmHWM of the process: its peak resident set size so far."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("VmHWM not found")

    def stop(self, sig=signal.SIGTERM, timeout_s=15):
        _live.discard(self)
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self._log.close()
                self.check_sanitizer()
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        self.check_sanitizer()
        return self.proc.returncode

    def check_sanitizer(self):
        """Raises when a sanitized hubcache reported a finding (or died by abort_on_error)."""
        if not self.sanitized or self.proc is None:
            return
        log = self.log()
        found = _SANITIZER_RE.search(log)
        if found or self.proc.returncode == -signal.SIGABRT:
            start = found.start() if found else max(0, len(log) - 20000)
            raise AssertionError(f"hubcache (pid {self.proc.pid}) sanitizer report in "
                                 f"{self.log_path}:\n{log[start:start + 20000]}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
