"""The command line: help, version, configuration from REGISTRY_* names and
flags (flags win), and one clear line with exit 2 for invalid configuration."""
import os
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mirror import free_port, hubcache_bin, wait_until  # noqa: E402


def run(args, env=None, timeout=10):
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("REGISTRY_") and not k.startswith("HUBCACHE_")}
    full_env.update(env or {})
    return subprocess.run([hubcache_bin(), *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout)


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hubcache-cli-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_version(self):
        r = run(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^hubcache \d+\.\d+\.\d+\n$")

    def test_help_lists_every_registry_name(self):
        r = run(["--help"])
        self.assertEqual(r.returncode, 0)
        for name in ["REGISTRY_HTTP_ADDR", "REGISTRY_PROXY_REMOTEURL", "REGISTRY_PROXY_USERNAME",
                     "REGISTRY_PROXY_PASSWORD", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                     "REGISTRY_LOG_LEVEL", "--addr", "--upstream", "--root", "--log-level"]:
            self.assertIn(name, r.stdout)
        self.assertEqual(run(["serve", "--help"]).returncode, 0)

    def test_unknown_command_is_usage_error(self):
        r = run(["frobnicate"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command", r.stderr)

    def test_invalid_configuration_is_one_line_exit_2(self):
        cases = [
            (["serve", "--addr", "nonsense"], {}, "REGISTRY_HTTP_ADDR"),
            (["serve", "--addr", "127.0.0.1:99999"], {}, "port"),
            (["serve"], {"REGISTRY_HTTP_ADDR": ":x"}, "REGISTRY_HTTP_ADDR"),
            (["serve"], {"REGISTRY_PROXY_REMOTEURL": "ftp://example"}, "REGISTRY_PROXY_REMOTEURL"),
            (["serve"], {"REGISTRY_LOG_LEVEL": "loud"}, "REGISTRY_LOG_LEVEL"),
            (["serve", "--tag-freshness", "5x"], {}, "tag-freshness"),
            (["serve", "--tag-freshness", "-1s"], {}, "tag-freshness"),
            (["serve", "--max-connections", "0"], {}, "max-connections"),
            (["serve", "--max-connections"], {}, "needs a value"),
            (["serve", "--no-such-flag", "1"], {}, "unknown option"),
            (["serve", "--root", ""], {}, "root"),
        ]
        for args, env, mention in cases:
            with self.subTest(args=args, env=env):
                r = run(args, env)
                self.assertEqual(r.returncode, 2, r.stderr)
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn(mention, lines[0])

    def _serve(self, args, env):
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("REGISTRY_") and not k.startswith("HUBCACHE_")}
        full_env.update(env)
        log = open(os.path.join(self.dir, "serve.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen([hubcache_bin(), "serve", *args], env=full_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

        def cleanup():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.addCleanup(cleanup)
        return proc

    def _answers(self, port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as r:
                return r.status == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        except OSError:
            return False

    def test_environment_configures_and_flags_win(self):
        env_port, flag_port = free_port(), free_port()
        root = os.path.join(self.dir, "from-env")
        proc = self._serve(["--addr", f"127.0.0.1:{flag_port}"], {
            "REGISTRY_HTTP_ADDR": f"127.0.0.1:{env_port}",
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": root,
            # Nothing listens here: the mirror must still start (tokens are lazy).
            "REGISTRY_PROXY_REMOTEURL": f"http://127.0.0.1:{free_port()}",
            "REGISTRY_LOG_LEVEL": "debug",
        })
        wait_until(lambda: self._answers(flag_port), 15, "mirror on the flag's port")
        self.assertFalse(self._answers(env_port))
        self.assertTrue(os.path.isfile(os.path.join(root, "index.db")))
        # SIGTERM is a graceful stop with exit 0.
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=15), 0)

    def test_unusable_cache_root_fails_clearly(self):
        blocker = os.path.join(self.dir, "file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        r = run(["serve", "--addr", f"127.0.0.1:{free_port()}", "--root", blocker])
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_port_in_use_fails_clearly(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            r = run(["serve", "--addr", f"127.0.0.1:{port}", "--root", os.path.join(self.dir, "c")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot listen", r.stderr)


if __name__ == "__main__":
    unittest.main()
