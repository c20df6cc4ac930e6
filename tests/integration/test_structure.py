#!/usr/bin/env python3
"""The project's structure, drawn from its includes (issue 16): src/ has one folder per
module, and a module includes only modules below it. The layers, lowest first:

  common, stats              (nothing)
  registry, index            common
  config, store              registry, common
  upstream                   config and what it uses
  cache, prewarm             upstream (cache also store, index, stats) and below
  server                     registry, common: the connection layer (accept limits,
                             TLS, keep-alive, the one request parser and response
                             writer, workers) with its own counters; no handler
  http                       server, cache, prewarm and what they use (never store,
                             index, upstream directly: the Mirror is its door)
  cli                        everything

A module that starts to include one beside or above it fails here with the file and
line; so does a cycle (it needs an upward arrow). No server is started.
"""
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")

# module -> what it may include (besides itself). Each list holds only lower layers.
ALLOWED = {
    "common": set(),
    "registry": {"common"},
    "stats": set(),
    "config": {"registry", "common"},
    "index": {"common"},
    "store": {"registry", "common"},
    "upstream": {"config", "registry", "common"},
    "prewarm": {"upstream", "config", "registry", "common"},
    "cache": {"upstream", "store", "index", "config", "registry", "stats", "common"},
    "server": {"registry", "common"},
    "http": {"server", "cache", "prewarm", "config", "registry", "stats", "common"},
    "cli": {"http", "server", "cache", "prewarm", "upstream", "store", "index", "config", "registry",
            "stats", "common"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"')


def includes():
    """(module, file, line number, included module) for every project include."""
    for module in sorted(os.listdir(SRC)):
        folder = os.path.join(SRC, module)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if m:
                        yield module, os.path.relpath(path, SRC), number, m.group(1)


class Structure(unittest.TestCase):
    def test_every_module_has_its_place(self):
        modules = {m for m in os.listdir(SRC) if os.path.isdir(os.path.join(SRC, m))}
        self.assertEqual(modules - set(ALLOWED), set(),
                         "a new folder under src/: give it its layer in ALLOWED")

    def test_includes_only_point_down(self):
        wrong = [f"{path}:{line}: {module} includes {target}/"
                 for module, path, line, target in includes()
                 if target != module and target not in ALLOWED.get(module, set())]
        self.assertEqual(wrong, [])

    def test_the_layers_have_no_cycle(self):
        # The table itself must be acyclic, or "only down" would mean nothing.
        state = {}

        def visit(m, trail):
            if state.get(m) == "done":
                return
            self.assertNotEqual(state.get(m), "open", f"cycle: {' -> '.join(trail + [m])}")
            state[m] = "open"
            for n in sorted(ALLOWED[m]):
                visit(n, trail + [m])
            state[m] = "done"
        for m in sorted(ALLOWED):
            visit(m, [])

    def test_the_table_is_not_looser_than_the_code(self):
        # An allowance nothing uses is an arrow the drawing should not show.
        used = {(module, target) for module, _, _, target in includes() if target != module}
        unused = [f"{m} -> {t}" for m, targets in ALLOWED.items() for t in targets
                  if (m, t) not in used]
        self.assertEqual(unused, [], "drop these from ALLOWED (or the code lost a layer)")


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    import harness  # noqa: E402
    harness.run_module(__file__)
