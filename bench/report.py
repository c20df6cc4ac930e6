#!/usr/bin/env python3
"""Merges benchmark result files into one markdown report: first the goals of
issues 8 and 17, a row each (a figure may carry two: issue 17's are stricter),
with hubcache's median, the reference's, their ratio, its per-round range and
the verdict; then every figure: the median of the rounds for each target and
hubcache's ratio to nginx.

    bench/report.py RESULTS_DIR [--docs FILE]

--docs FILE also writes the report into FILE (docs/benchmarks.md) between the
lines `<!-- bench/run.sh report: begin -->` and `<!-- bench/run.sh report: end -->`,
under a line that says when, on which commit and at what load it was taken.

RESULTS_DIR holds files named `<kind>-<target>-r<round>.txt` (kind: bench,
keepalive, hits, rates) with one figure per line, `name value unit`, as the test
bed's bench.sh writes them; `#` lines are comments and NA marks a figure not taken.
The manifest HEAD/GET and one-client hit goals are scored on rates.sh's `rate_*`
figures (hubcache-load, alternated rounds); bench.sh's own figures of the same
work (ab's whole milliseconds for HEAD) stay in the table unscored.
"""
import collections
import os
import re
import statistics
import subprocess
import sys
import time

TARGETS = ["hubcache", "nginx", "dist", "hub"]

# (figure, goal kind, threshold, against, issues) -- kinds:
#   ratio_ge / ratio_le : hubcache / <against> >= or <= threshold
#   abs_le / abs_eq     : hubcache's own value <= or == threshold
# A figure may carry several goals (issue 8's, then issue 17's stricter ones):
# each goal is a row of the goals table.
GOALS = [
    ("rate_hit_1client_MBps", "ratio_ge", 1.0, "nginx", "8, 17"),
    ("hit_many_MBps", "ratio_ge", 1.0, "nginx", "8"),
    ("rate_manifest_get_rps", "ratio_ge", 1.0, "nginx", "8"),
    ("rate_manifest_get_p99", "ratio_le", 1.0, "nginx", "8"),
    ("rate_manifest_head_rps", "ratio_ge", 1.0, "nginx", "8, 17"),
    ("rate_manifest_head_p99", "ratio_le", 1.0, "nginx", "8"),
    ("big_first_fetch_MBps", "ratio_ge", 0.9, "hub", "8"),
    ("big_first_fetch_MBps", "ratio_ge", 1.0, "nginx", "17"),
    ("ratio_cold_medium", "abs_le", 1.05, None, "8"),
    ("ratio_cold_medium", "abs_le", 1.0, None, "17"),
    ("ratio_cold_many", "abs_le", 1.05, None, "8"),
    ("ratio_cold_many", "abs_le", 1.0, None, "17"),
    ("cold_upstream_bytes_ratio_medium", "abs_le", 1.0, None, "8, 17"),
    ("cold_upstream_bytes_ratio_many", "abs_le", 1.0, None, "8, 17"),
    ("cold_token_requests_medium", "abs_le", 1.0, None, "8"),
    ("cold_token_requests_many", "abs_le", 1.0, None, "8"),
    ("big_first_fetch_upstream_ratio", "abs_le", 1.0, None, "8"),
    ("herd_wall", "ratio_le", 1.0, "nginx", "8"),
    ("herd_upstream_ratio", "abs_le", 1.0, None, "8"),
    ("herd_upstream_get", "abs_le", 1.0, None, "8"),
    ("rss_peak_first_fetch_1g", "abs_le", 48.0, None, "8, 17"),
    ("rss_peak_hit_1g", "abs_le", 48.0, None, "8, 17"),
    ("ka_rss_growth_MiB", "abs_le", 8.0, None, "8"),
    ("ka_transfer_ttfb_max_ms", "ratio_le", 1.0, "nginx", "8"),
    ("ka_transfers_errors", "abs_eq", 0.0, None, "8"),
    ("hits_manifest_tag_p99_ratio", "abs_le", 1.5, None, "8"),
    ("hits_manifest_digest_p99_ratio", "abs_le", 1.5, None, "8"),
    ("hits_blob_p99_ratio", "abs_le", 1.5, None, "8"),
]
GOAL_FIGURES = {g[0] for g in GOALS}


def parse(path):
    values = {}
    units = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 2:
                continue
            name, value = parts[0], parts[1]
            units[name] = parts[2] if len(parts) > 2 else ""
            try:
                values[name] = float(value)
            except ValueError:
                values[name] = None
    return values, units


def fmt(v):
    if v is None:
        return "NA"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


BEGIN = "<!-- bench/run.sh report: begin -->"
END = "<!-- bench/run.sh report: end -->"


def write_into_docs(path, report, root):
    """Replaces the block between BEGIN and END in `path` with `report`."""
    with open(path) as f:
        text = f.read()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        sys.exit(f"report.py: {path} needs one '{BEGIN}' line and one '{END}' line after it")
    here = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(root)))
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    block = (f"{BEGIN}\n_Written by `bench/run.sh` at {when}, main at `{commit}`, results in "
             f"`{root}`; load average when written {load}._\n\n{report}\n{END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path + ".tmp", "w") as f:
        f.write(head + block + tail)
    os.replace(path + ".tmp", path)


def main():
    args = sys.argv[1:]
    docs = None
    if len(args) == 3 and args[1] == "--docs":
        docs = args[2]
        args = args[:1]
    if len(args) != 1:
        sys.exit(__doc__)
    root = args[0]
    # samples[target][figure] = [value per round]
    samples = collections.defaultdict(lambda: collections.defaultdict(list))
    # by_round[target][figure][round] = value, to pair the targets round by round
    by_round = collections.defaultdict(lambda: collections.defaultdict(dict))
    units = {}
    order = []
    rounds = collections.defaultdict(set)  # kind -> round numbers
    pattern = re.compile(r"^(bench|keepalive|hits|rates)-([a-z]+)-r(\d+)\.txt$")
    kinds = ["bench", "keepalive", "hits", "rates"]
    files = []
    for name in os.listdir(root):
        m = pattern.match(name)
        if m:
            rank = TARGETS.index(m.group(2)) if m.group(2) in TARGETS else len(TARGETS)
            files.append((kinds.index(m.group(1)), rank, int(m.group(3)), name, m))
    # The rows follow the figures of the first file read: hubcache's bench file
    # first, not whichever name sorts first ("bench-hub-" has only the 1 GiB figures).
    for _, _, _, name, m in sorted(files):
        target, rnd = m.group(2), int(m.group(3))
        rounds[m.group(1)].add(rnd)
        values, u = parse(os.path.join(root, name))
        for fig, v in values.items():
            if fig not in order:
                order.append(fig)
            units.setdefault(fig, u.get(fig, ""))
            if v is not None:
                samples[target][fig].append(v)
                by_round[target][fig][rnd] = v

    def med(target, fig):
        vals = samples.get(target, {}).get(fig, [])
        return statistics.median(vals) if vals else None

    def round_ratios(fig, against):
        h, a = by_round["hubcache"].get(fig, {}), by_round[against].get(fig, {})
        return [h[r] / a[r] for r in sorted(h) if r in a and a[r]]

    targets = [t for t in TARGETS if t in samples]
    n_rounds = ", ".join(f"{len(rounds[k])} of {k}" for k in kinds if rounds[k])
    out = []
    out.append(f"Medians of the rounds ({n_rounds}). Ratio = hubcache / the reference, of the "
               "medians; per round = the lowest and highest of that ratio taken round by round "
               "(for an absolute goal: of hubcache's own value), how far the noise of the "
               "machine moves it.\n")
    out.append("### Goals\n")
    out.append("| figure | goal | issue | hubcache | reference | ratio | per round | met |")
    out.append("|---|---|---|---|---|---|---|---|")
    verdicts = []
    unmeasured = []  # goals whose figures this run did not take (a target left out)
    for fig, kind, threshold, against, issues in GOALS:
        h = med("hubcache", fig)
        unit = units.get(fig, "")
        row = [f"`{fig}`" + (f" ({unit})" if unit else "")]
        if kind.startswith("ratio"):
            op = ">=" if kind == "ratio_ge" else "<="
            a = med(against, fig)
            r = h / a if h is not None and a not in (None, 0) else None
            rr = round_ratios(fig, against)
            spread = f"{min(rr):.2f}-{max(rr):.2f}x" if len(rr) > 1 else ""
            row += [f"{op} {threshold:g}x {against}", issues, fmt(h), fmt(a),
                    f"{r:.2f}x" if r is not None else "NA", spread]
            if r is None:
                row.append("not measured")
                unmeasured.append(f"`{fig}` ({op} {threshold:g}x {against}, issue {issues})")
            else:
                ok = r >= threshold if kind == "ratio_ge" else r <= threshold
                row.append("yes" if ok else "**no**")
                verdicts.append((fig, ok, f"{r:.2f}x {against} (goal {op} {threshold:g}x, issue {issues})"))
        else:
            op = "<=" if kind == "abs_le" else "=="
            vals = sorted(samples["hubcache"].get(fig, []))
            spread = f"{fmt(vals[0])}-{fmt(vals[-1])}" if len(vals) > 1 and vals[0] != vals[-1] else ""
            row += [f"{op} {threshold:g}", issues, fmt(h), "", "", spread]
            if h is None:
                row.append("not measured")
                unmeasured.append(f"`{fig}` ({op} {threshold:g}, issue {issues})")
            else:
                ok = h <= threshold if kind == "abs_le" else h == threshold
                row.append("yes" if ok else "**no**")
                verdicts.append((fig, ok, f"{fmt(h)} (goal {op} {threshold:g}, issue {issues})"))
        out.append("| " + " | ".join(row) + " |")
    met = [v for v in verdicts if v[1]]
    unmet = [v for v in verdicts if not v[1]]
    out.append("")
    out.append(f"Goals met: {len(met)} of {len(verdicts)}"
               + (f"; {len(unmeasured)} not measured in this run." if unmeasured else "."))
    for fig, _, text in unmet:
        out.append(f"- not met: `{fig}` {text}")
    for text in unmeasured:
        out.append(f"- not measured: {text}")

    out.append("\n### Every figure\n")
    out.append("| figure | unit | " + " | ".join(targets) + " | hubcache / nginx |")
    out.append("|---|---|" + "---|" * len(targets) + "---|")
    for fig in order:
        if fig in ("bench_wall",) or fig.endswith("_clients") or fig.endswith("_errors") and fig not in GOAL_FIGURES:
            continue
        # A rate's numerator, and the body bytes of HEADs (none).
        if fig.startswith("rate_") and fig.endswith("_requests") or fig == "rate_manifest_head_MBps":
            continue
        row = [fig, units.get(fig, "")]
        for t in targets:
            row.append(fmt(med(t, fig)))
        h, n = med("hubcache", fig), med("nginx", fig)
        row.append(fmt(h / n) if h is not None and n not in (None, 0) else "")
        out.append("| " + " | ".join(row) + " |")
    # The error counts are not rows; a run that had any is named, since its rates
    # and latencies then measure something else than the work.
    for fig in order:
        if fig.endswith("_errors") and fig not in GOAL_FIGURES:
            for t in targets:
                bad = {r: v for r, v in sorted(by_round[t].get(fig, {}).items()) if v}
                if bad:
                    rounds_text = ", ".join(f"r{r}: {v:g}" for r, v in bad.items())
                    out.append(f"- errors: `{fig}` {t} ({rounds_text})")
    report = "\n".join(out)
    print(report)
    if docs:
        write_into_docs(docs, report, root)


if __name__ == "__main__":
    main()
