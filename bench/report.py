#!/usr/bin/env python3
"""Merges benchmark result files into one markdown report: the median of the
rounds for every figure and target, hubcache's ratio to nginx (and to the
upstream itself where a goal says so), and whether each goal of issue 8 is met.

    bench/report.py RESULTS_DIR

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
import sys

TARGETS = ["hubcache", "nginx", "dist", "hub"]

# (figure, goal kind, threshold, against) -- kinds:
#   ratio_ge / ratio_le : hubcache / <against> >= or <= threshold
#   abs_le / abs_eq     : hubcache's own value <= or == threshold
GOALS = [
    ("rate_hit_1client_MBps", "ratio_ge", 1.0, "nginx"),
    ("hit_many_MBps", "ratio_ge", 1.0, "nginx"),
    ("rate_manifest_get_rps", "ratio_ge", 1.0, "nginx"),
    ("rate_manifest_get_p99", "ratio_le", 1.0, "nginx"),
    ("rate_manifest_head_rps", "ratio_ge", 1.0, "nginx"),
    ("rate_manifest_head_p99", "ratio_le", 1.0, "nginx"),
    ("big_first_fetch_MBps", "ratio_ge", 0.9, "hub"),
    ("ratio_cold_medium", "abs_le", 1.05, None),
    ("ratio_cold_many", "abs_le", 1.05, None),
    ("cold_upstream_bytes_ratio_medium", "abs_le", 1.0, None),
    ("cold_upstream_bytes_ratio_many", "abs_le", 1.0, None),
    ("cold_token_requests_medium", "abs_le", 1.0, None),
    ("cold_token_requests_many", "abs_le", 1.0, None),
    ("big_first_fetch_upstream_ratio", "abs_le", 1.0, None),
    ("herd_wall", "ratio_le", 1.0, "nginx"),
    ("herd_upstream_ratio", "abs_le", 1.0, None),
    ("herd_upstream_get", "abs_le", 1.0, None),
    ("rss_peak_first_fetch_1g", "abs_le", 48.0, None),
    ("rss_peak_hit_1g", "abs_le", 48.0, None),
    ("ka_rss_growth_MiB", "abs_le", 8.0, None),
    ("ka_transfer_ttfb_max_ms", "ratio_le", 1.0, "nginx"),
    ("ka_transfers_errors", "abs_eq", 0.0, None),
    ("hits_manifest_tag_p99_ratio", "abs_le", 1.5, None),
    ("hits_manifest_digest_p99_ratio", "abs_le", 1.5, None),
    ("hits_blob_p99_ratio", "abs_le", 1.5, None),
]
GOAL_BY_FIGURE = {g[0]: g for g in GOALS}


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


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    # samples[target][figure] = [value per round]
    samples = collections.defaultdict(lambda: collections.defaultdict(list))
    # by_round[target][figure][round] = value, to pair the targets round by round
    by_round = collections.defaultdict(lambda: collections.defaultdict(dict))
    units = {}
    order = []
    rounds = set()
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
        rounds.add(rnd)
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
    n_rounds = len(rounds)
    out = []
    out.append(f"Medians of {n_rounds} round(s); ratio = hubcache / nginx in the same rounds; "
               "per round = the lowest and highest over the rounds of the goal's ratio, taken "
               "round by round (for an absolute goal: of hubcache's value); how far the noise "
               "of the machine moves it.\n")
    out.append("| figure | unit | " + " | ".join(targets) + " | hubcache / nginx | goal | met | per round |")
    out.append("|---|---|" + "---|" * len(targets) + "---|---|---|---|")
    verdicts = []
    for fig in order:
        if fig in ("bench_wall",) or fig.endswith("_clients") or fig.endswith("_errors") and fig not in GOAL_BY_FIGURE:
            continue
        # A rate's numerator, and the body bytes of HEADs (none).
        if fig.startswith("rate_") and fig.endswith("_requests") or fig == "rate_manifest_head_MBps":
            continue
        row = [fig, units.get(fig, "")]
        for t in targets:
            row.append(fmt(med(t, fig)))
        h, n = med("hubcache", fig), med("nginx", fig)
        ratio = h / n if h is not None and n not in (None, 0) else None
        row.append(fmt(ratio) if ratio is not None else "")
        goal_text, met_text, spread = "", "", ""
        g = GOAL_BY_FIGURE.get(fig)
        if g and h is not None:
            _, kind, threshold, against = g
            if kind.startswith("ratio"):
                rr = round_ratios(fig, against)
                if len(rr) > 1:
                    spread = f"{min(rr):.2f}-{max(rr):.2f}x"
                a = med(against, fig)
                r = h / a if a not in (None, 0) else None
                op = ">=" if kind == "ratio_ge" else "<="
                goal_text = f"{op} {threshold:g}x {against}"
                if r is not None:
                    ok = r >= threshold if kind == "ratio_ge" else r <= threshold
                    met_text = ("yes" if ok else "**no**") + f" ({r:.2f}x)"
                    verdicts.append((fig, ok, f"{r:.2f}x {against} (goal {op} {threshold:g}x)"))
            else:
                vals = sorted(samples["hubcache"].get(fig, []))
                if len(vals) > 1 and vals[0] != vals[-1]:
                    spread = f"{fmt(vals[0])}-{fmt(vals[-1])}"
                op = "<=" if kind == "abs_le" else "=="
                ok = h <= threshold if kind == "abs_le" else h == threshold
                goal_text = f"{op} {threshold:g}"
                met_text = "yes" if ok else "**no**"
                verdicts.append((fig, ok, f"{fmt(h)} (goal {op} {threshold:g})"))
        row += [goal_text, met_text, spread]
        out.append("| " + " | ".join(row) + " |")
    met = [v for v in verdicts if v[1]]
    unmet = [v for v in verdicts if not v[1]]
    out.append("")
    out.append(f"Goals met: {len(met)} of {len(verdicts)}.")
    for fig, _, text in unmet:
        out.append(f"- not met: `{fig}` {text}")
    # The error counts are not rows; a run that had any is named, since its rates
    # and latencies then measure something else than the work.
    for fig in order:
        if fig.endswith("_errors") and fig not in GOAL_BY_FIGURE:
            for t in targets:
                bad = {r: v for r, v in sorted(by_round[t].get(fig, {}).items()) if v}
                if bad:
                    rounds_text = ", ".join(f"r{r}: {v:g}" for r, v in bad.items())
                    out.append(f"- errors: `{fig}` {t} ({rounds_text})")
    print("\n".join(out))


if __name__ == "__main__":
    main()
