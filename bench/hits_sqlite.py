#!/usr/bin/env python3
"""Does a cache hit's latency depend on SQLite writes? (issue 3)

    bench/hits_sqlite.py --bin BUILD/hubcache --upstream http://127.0.0.1:HUB_PORT \
        --port PORT --root DIR --seed SEED.json [--seconds 8] [--out FILE]

Runs its own hubcache (on --port, cache in --root, tags fresh for an hour so no
request goes upstream) twice over the same warm cache:

  quiet   the default --access-flush-interval (5s), nothing else touches index.db;
  hammer  --access-flush-interval 10ms (the last-use flusher writes index.db a
          hundred times a second) while a second process holds index.db's write
          lock most of the time (BEGIN IMMEDIATE; UPDATE every row; 40 ms; COMMIT;
          10 ms pause), as `hubcache gc` beside a running server or a slow disk
          would.

In each it measures three kinds of hit with wrk (2 threads, 8 connections,
--seconds each, GET): a manifest by tag, a manifest by digest, and a small blob
(the image config). Figures, `name value unit`:
hits_<kind>_{p50,p99}_ms_{quiet,hammer}, hits_<kind>_rps_{quiet,hammer}, and
hits_<kind>_p99_ratio / _p50_ratio (hammer / quiet: 1.0 = unaffected),
hits_hammer_commits (write transactions the second process completed).
"""
import argparse
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
import urllib.request

ACCEPT = ("application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json, "
          "application/vnd.docker.distribution.manifest.list.v2+json")


def wait_up(url, proc, limit_s=20):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("hubcache exited during start")
        try:
            urllib.request.urlopen(url + "/v2/", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("hubcache did not answer")


def get(url, accept=None):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.headers.get("X-Hubcache-Cache"), r.read()


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        return None
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def wrk(url, seconds, accept=None):
    cmd = ["wrk", "-t", "2", "-c", "8", "-d", f"{seconds}s", "--timeout", "10s", "--latency"]
    if accept:
        cmd += ["-H", "Accept: " + accept]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30).stdout
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rps = re.search(r"^Requests/sec:\s+(\S+)", out, re.M)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "p50": to_ms(p50.group(1)) if p50 else None,
        "p99": to_ms(p99.group(1)) if p99 else None,
        "rps": float(rps.group(1)) if rps else None,
        "errors": int(errs.group(1)) if errs else 0,
    }


def hammer(db_path, stop, counter):
    """Holds index.db's write lock ~80 % of the time until stop is set."""
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    while not stop.is_set():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE blobs SET last_access_ms = last_access_ms")
        conn.execute("UPDATE manifests SET last_access_ms = last_access_ms")
        time.sleep(0.04)
        conn.execute("COMMIT")
        counter[0] += 1
        time.sleep(0.01)
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--seed", required=True)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    seed = json.load(open(args.seed))
    base = f"http://127.0.0.1:{args.port}"
    urls = {
        "manifest_tag": (f"{base}/v2/library/medium/manifests/1", ACCEPT),
        "manifest_digest": (f"{base}/v2/library/medium/manifests/{seed['medium']['digest']}", ACCEPT),
        "blob": (f"{base}/v2/library/medium/blobs/{seed['medium']['config']['digest']}", None),
    }
    lines = []

    def emit(name, value, unit):
        text = f"{name:34s} {value} {unit}"
        print(text, flush=True)
        lines.append(text)

    results = {}
    os.makedirs(args.root, exist_ok=True)
    log = open(os.path.join(args.root, "server.log"), "a")
    for mode in ("quiet", "hammer"):
        flags = ["--access-flush-interval", "10ms"] if mode == "hammer" else []
        proc = subprocess.Popen(
            [args.bin, "serve", "--addr", f"127.0.0.1:{args.port}", "--upstream", args.upstream,
             "--root", os.path.join(args.root, "data"), "--tag-freshness", "1h",
             "--access-log", os.path.join(args.root, "access.log")] + flags,
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        stop = threading.Event()
        commits = [0]
        writer = None
        try:
            wait_up(base, proc)
            for kind, (url, accept) in urls.items():  # warm (and check) every URL
                status, cache, _ = get(url, accept)
                if status != 200:
                    raise SystemExit(f"{kind}: {status}")
            time.sleep(0.5)
            if mode == "hammer":
                writer = threading.Thread(
                    target=hammer, args=(os.path.join(args.root, "data", "index.db"), stop, commits))
                writer.start()
                time.sleep(0.5)
            for kind, (url, accept) in urls.items():
                results[(kind, mode)] = wrk(url, args.seconds, accept)
        finally:
            stop.set()
            if writer:
                writer.join(timeout=60)
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if mode == "hammer":
            emit("hits_hammer_commits", commits[0], "n")

    for kind in urls:
        q, h = results[(kind, "quiet")], results[(kind, "hammer")]
        for mode, r in (("quiet", q), ("hammer", h)):
            emit(f"hits_{kind}_p50_ms_{mode}", f"{r['p50']:.3f}" if r["p50"] else "NA", "ms")
            emit(f"hits_{kind}_p99_ms_{mode}", f"{r['p99']:.3f}" if r["p99"] else "NA", "ms")
            emit(f"hits_{kind}_rps_{mode}", f"{r['rps']:.0f}" if r["rps"] else "NA", "req/s")
            emit(f"hits_{kind}_errors_{mode}", r["errors"], "n")
        for stat in ("p50", "p99"):
            ratio = h[stat] / q[stat] if h[stat] and q[stat] else None
            emit(f"hits_{kind}_{stat}_ratio", f"{ratio:.2f}" if ratio else "NA", "x")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
