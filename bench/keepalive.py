#!/usr/bin/env python3
"""Idle keep-alive connections plus active transfers, against any mirror.

    bench/keepalive.py --url http://127.0.0.1:PORT --pids-cmd "CMD" --blob DIGEST [--out FILE]

1. Warms the blob (one GET) and measures the mirror's resident memory (VmRSS
   summed over the pids CMD prints): the base.
2. Opens --idle connections (default 500), each from its own loopback address
   pair (127.0.0.2...), sends one small request (a manifest by digest, or /v2/),
   and leaves the connection open and idle: what a fleet of Docker daemons with
   pooled connections looks like.
3. Runs --transfers clients (default 16) that GET the blob over and over for
   --seconds (default 15), while sampling VmRSS every 100 ms.

Prints figures as `name value unit` lines (the test bed's bench.sh format):
ka_rss_base_MiB, ka_rss_idle_MiB (with the idle connections open),
ka_rss_peak_MiB (during the transfers), ka_rss_growth_MiB (peak - base),
ka_idle_answered (idle connections whose request was answered),
ka_transfer_ttfb_p50_ms / _max_ms (time to first byte of the transfers: a
transfer stuck behind idle connections shows here), ka_transfers_done,
ka_transfers_MBps, ka_transfers_errors. Every wait is bounded.
"""
import argparse
import http.client
import json
import socket
import statistics
import subprocess
import threading
import time
import urllib.parse
import urllib.request


def rss_mib(pids_cmd):
    total = 0
    for pid in subprocess.run(["bash", "-c", pids_cmd], capture_output=True, text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


def bearer_for(base, repo):
    """A pull token when the endpoint answers 401 Bearer (nginx passes the hub's
    challenge through), else None."""
    try:
        urllib.request.urlopen(base + "/v2/", timeout=10)
        return None
    except urllib.error.HTTPError as e:
        challenge = e.headers.get("WWW-Authenticate", "")
    except OSError:
        return None
    params = dict(p.split("=", 1) for p in challenge.replace("Bearer ", "").split(","))
    params = {k.strip(): v.strip('"') for k, v in params.items()}
    url = f'{params["realm"]}?service={params.get("service", "")}&scope=repository:{repo}:pull'
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.load(r)
    return doc.get("token") or doc.get("access_token")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pids-cmd", required=True)
    ap.add_argument("--blob", required=True, help="digest of a ~20 MB blob of library/medium")
    ap.add_argument("--manifest", default="", help="digest of a manifest of library/medium")
    ap.add_argument("--repo", default="library/medium")
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--transfers", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    u = urllib.parse.urlparse(args.url)
    host, port = u.hostname, u.port
    token = bearer_for(args.url, args.repo)
    auth = {"Authorization": "Bearer " + token} if token else {}
    blob_path = f"/v2/{args.repo}/blobs/{args.blob}"
    lines = []

    def emit(name, value, unit):
        text = f"{name:34s} {value} {unit}"
        print(text, flush=True)
        lines.append(text)

    # 1. warm + base
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("GET", blob_path, headers=auth)
    r = c.getresponse()
    size = len(r.read())
    c.close()
    if r.status != 200:
        raise SystemExit(f"blob GET answered {r.status}")
    time.sleep(1.0)
    base = rss_mib(args.pids_cmd)
    emit("ka_rss_base_MiB", f"{base:.1f}", "MiB")

    # 2. idle connections, each with one answered-or-pending request
    if args.manifest:
        small = (f"GET /v2/{args.repo}/manifests/{args.manifest} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 "Accept: application/vnd.oci.image.manifest.v1+json, "
                 "application/vnd.docker.distribution.manifest.v2+json\r\n")
    else:
        small = f"GET /v2/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if token:
        small += f"Authorization: Bearer {token}\r\n"
    small = (small + "\r\n").encode()
    idle = []
    for i in range(args.idle):
        s = socket.socket()
        s.bind((f"127.0.{2 + i // 250}.{2 + i % 250}", 0))
        s.settimeout(5)
        try:
            s.connect((host, port))
            s.sendall(small)
            s.setblocking(False)
            idle.append([s, b""])
        except OSError:
            s.close()
    time.sleep(2.0)

    def drain():
        answered = 0
        for entry in idle:
            try:
                while True:
                    chunk = entry[0].recv(65536)
                    if not chunk:
                        break
                    entry[1] += chunk
            except (BlockingIOError, OSError):
                pass
            if entry[1].startswith(b"HTTP/1.1 "):
                answered += 1
        return answered

    drain()
    emit("ka_idle_conns", len(idle), "n")
    emit("ka_rss_idle_MiB", f"{rss_mib(args.pids_cmd):.1f}", "MiB")

    # 3. transfers + RSS sampling
    stop_at = time.monotonic() + args.seconds
    ttfb, done, errors, nbytes = [], [0], [0], [0]
    lock = threading.Lock()

    def transfer():
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            try:
                conn = http.client.HTTPConnection(host, port, timeout=max(1.0, args.seconds + 30))
                conn.request("GET", blob_path, headers=auth)
                resp = conn.getresponse()
                first = time.monotonic()
                got = 0
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
                conn.close()
                with lock:
                    ttfb.append((first - t0) * 1000)
                    if resp.status == 200 and got == size:
                        done[0] += 1
                        nbytes[0] += got
                    else:
                        errors[0] += 1
            except OSError:
                with lock:
                    errors[0] += 1

    peak = [0.0]

    def sample():
        while time.monotonic() < stop_at + 1:
            peak[0] = max(peak[0], rss_mib(args.pids_cmd))
            time.sleep(0.1)

    t_start = time.monotonic()
    threads = [threading.Thread(target=transfer) for _ in range(args.transfers)]
    sampler = threading.Thread(target=sample)
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.seconds + 60)
    elapsed = time.monotonic() - t_start
    sampler.join(timeout=5)
    answered = drain()
    for entry in idle:
        entry[0].close()

    emit("ka_rss_peak_MiB", f"{peak[0]:.1f}", "MiB")
    emit("ka_rss_growth_MiB", f"{peak[0] - base:.1f}", "MiB")
    emit("ka_idle_answered", answered, "n")
    emit("ka_transfers_done", done[0], "n")
    emit("ka_transfers_errors", errors[0], "n")
    emit("ka_transfers_MBps", f"{nbytes[0] / elapsed / 1e6:.1f}", "MB/s")
    if ttfb:
        emit("ka_transfer_ttfb_p50_ms", f"{statistics.median(ttfb):.1f}", "ms")
        emit("ka_transfer_ttfb_max_ms", f"{max(ttfb):.1f}", "ms")
    else:
        emit("ka_transfer_ttfb_p50_ms", "NA", "ms")
        emit("ka_transfer_ttfb_max_ms", "NA", "ms")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
