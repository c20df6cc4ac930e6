#!/usr/bin/python3
"""Test results for scripts/test.sh, scripts/sanitize.sh and scripts/fuzz.sh: one rule for skips.

  tally.py meson TESTLOG [PREFIX]   meson's testlog.json -> "<PREFIX><test> <WORD>" lines
  tally.py summary RESULTS...       counts "<test> <WORD>" lines; prints the closing line
                                    "N passed, N failed"; exits 1 when any failed

WORD is OK, FAIL, SKIP or SKIP-ALLOWED. A test that skips (exit 77) could not run here, and in
CI that is a failure, not a pass: SKIP counts as failed. The one exception is the OCI conformance
suite (test_conformance) when ../shared/tools/oci-conformance/ (beside the repository) is absent:
that is SKIP-ALLOWED, neither passed nor failed, and said so plainly. In CI the suite is always
there, so the exception never applies there.
"""
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFORMANCE_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "tools", "oci-conformance"))


def skip_allowed(name):
    """The reason a skip of test `name` is allowed, or None when it counts as a failure."""
    if name == "test_conformance" and not os.path.isdir(CONFORMANCE_DIR):
        return f"{CONFORMANCE_DIR}/ is absent"
    return None


def meson(testlog, prefix=""):
    with open(testlog) as f:
        for line in f:
            t = json.loads(line)
            result = t.get("result")
            if result in ("OK", "EXPECTEDFAIL"):
                word = "OK"
            elif result == "SKIP":
                word = "SKIP-ALLOWED" if skip_allowed(t["name"]) else "SKIP"
            else:
                word = "FAIL"
            print(f"{prefix}{t['name']} {word}")


def summary(paths):
    passed = failed = 0
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                name, word = line.rsplit(None, 1)
                if word == "OK":
                    passed += 1
                elif word == "SKIP-ALLOWED":
                    reason = skip_allowed(name.split(":")[-1]) or "allowed when it was recorded"
                    print(f"{name}: SKIPPED, not counted ({reason}; the one skip allowed)")
                else:
                    failed += 1
                    if word == "SKIP":
                        print(f"{name}: SKIPPED, counted as a failure (a test that cannot run "
                              f"here fails; see its log for the reason)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "meson":
        meson(argv[1], argv[2] if len(argv) > 2 else "")
        return 0
    if argv and argv[0] == "summary":
        return summary(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
