#!/usr/bin/env python3
"""Summarizes a whole-machine `perf record -a -g` for one process name.

    bench/perf_summary.py PERF_DATA [COMM [PID]]    (COMM default: hubcache)

With PID only that process counts as COMM: on a shared machine other sessions
may run processes of the same name (tests, sanitizer builds).

Prints, from `perf script`:
  - the CPU share of every process name (the machine is shared: compilers and
    the load generator show up here, which is the first thing to know);
  - for COMM: the share of each object (kernel, hubcache, libcurl, ...), its top
    symbols (self time), and the kernel time by the system call it came from
    (the first libc frame of the call chain: __libc_recv, __libc_pread64, ...).
Symbols of stripped libraries are named by address; the SHA-256 block function
of libcrypto (SHA-NI) is recognized by its instructions and named `sha256 (libcrypto)`.
"""
import collections
import re
import subprocess
import sys

FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)$")


def crypto_sha_ranges(path):
    """Address ranges in libcrypto whose code uses sha256rnds2 (the SHA-NI path)."""
    try:
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True,
                             text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    addrs = [int(m.group(1), 16) for m in re.finditer(r"^\s*([0-9a-f]+):\s+sha256rnds2", out, re.M)]
    if not addrs:
        return []
    return [(min(addrs) - 0x400, max(addrs) + 0x400)]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    data, comm = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "hubcache")
    want_pid = sys.argv[3] if len(sys.argv) > 3 else None
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,tid,ip,sym,dso"],
                         capture_output=True, text=True, errors="replace").stdout
    by_comm = collections.Counter()
    by_dso = collections.Counter()
    by_sym = collections.Counter()
    by_syscall = collections.Counter()
    total = mine = 0
    crypto_path, sha_ranges = None, []
    for block in out.split("\n\n"):
        lines = [l for l in block.split("\n") if l.strip()]
        if not lines:
            continue
        m = re.match(r"^\s*(.*?)\s+(\d+)(?:/\d+)?\s*$", lines[0])
        name, pid = (m.group(1), m.group(2)) if m else (lines[0].strip(), None)
        total += 1
        if want_pid and name == comm and pid != want_pid:
            name = comm + " (other pids)"
        by_comm[name] += 1
        if name != comm:
            continue
        mine += 1
        frames = [m.groups() for m in (FRAME.match(l) for l in lines[1:]) if m]
        if not frames:
            continue
        ip, sym, dso = frames[0]
        short = dso.rsplit("/", 1)[-1]
        if "libcrypto" in short and crypto_path is None:
            crypto_path = dso
            sha_ranges = crypto_sha_ranges(dso)
        if sym in ("[unknown]", "") and "libcrypto" in short:
            off = int(ip, 16)
            sym = next(("sha256 (libcrypto, SHA-NI)" for lo, hi in sha_ranges if lo <= off <= hi),
                       f"libcrypto+{off:#x}")
        by_dso[short] += 1
        by_sym[f"{sym}  [{short}]"] += 1
        if short.startswith("[kernel"):
            call = next((s for _, s, d in frames[1:] if not d.startswith("[kernel") and s != "[unknown]"),
                        "?")
            by_syscall[call] += 1

    def table(title, counter, denom, limit=15, floor=0.5):
        print(f"{title}")
        for k, n in counter.most_common(limit):
            pct = 100.0 * n / denom if denom else 0
            if pct < floor:
                break
            print(f"  {pct:5.1f}%  {k}")
        print()

    who = f"{comm} pid {want_pid}" if want_pid else comm
    print(f"# {data}: {total} samples on all CPUs, {mine} in {who}\n")
    table("CPU share by process (whole machine)", by_comm, total, limit=8)
    table(f"{comm}: share of its samples by object", by_dso, mine, limit=10)
    table(f"{comm}: top symbols (self)", by_sym, mine, limit=20)
    kernel = sum(by_syscall.values())
    table(f"{comm}: kernel time by the user-space caller (first non-kernel frame), % of {comm}",
          by_syscall, mine, limit=10)


if __name__ == "__main__":
    main()
