"""What the bench/ drivers share (push.py, s3.py): reading the `figure value`
result files the rounds write, and the one number format of the reports."""


def parse(path):
    """A result file's figures: {name: float}, '#' lines and text values skipped."""
    vals = {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 2 and not line.startswith("#"):
                try:
                    vals[p[0]] = float(p[1])
                except ValueError:
                    pass
    return vals


def fmt(v):
    """A figure for a report table: NA, or 3 significant digits (integers from 1000)."""
    if v is None:
        return "NA"
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
