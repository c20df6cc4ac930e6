"""Configured response headers (REGISTRY_HTTP_HEADERS_<Name>, issue 13 item 7) and the
CORS preflight, against the real upstream and the real binary.

One mirror with htpasswd on and the joxit docker-registry-ui's CORS headers: the
fields appear on /v2/, a manifest GET, a 404, a 401 and /healthz, one field per list
element; an OPTIONS preflight without credentials is answered 200 with them (any body
left unread, the connection closed) while a GET without credentials still gets 401.
Bad settings make `hubcache serve` and `hubcache check-config` exit 2 with one line."""
import base64
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
from mirror import Mirror, free_port, hubcache_bin, run_cli  # noqa: E402
from upstream import started_upstream  # noqa: E402

USER, PASSWORD = "ui-user", "ui-secret-1"
ORIGIN = "https://ui.example"
CORS_ENV = {
    "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin": f'["{ORIGIN}"]',
    "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Methods": "[HEAD, GET, OPTIONS, DELETE]",
    "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Headers":
        "['Authorization', Accept, \"Cache-Control\"]",
    "REGISTRY_HTTP_HEADERS_Access-Control-Expose-Headers": "[Docker-Content-Digest]",
    "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Credentials": "[true]",
    "REGISTRY_HTTP_HEADERS_X-Plain": "a plain string",
}
EXPECTED = {
    "Access-Control-Allow-Origin": [ORIGIN],
    "Access-Control-Allow-Methods": ["HEAD", "GET", "OPTIONS", "DELETE"],
    "Access-Control-Allow-Headers": ["Authorization", "Accept", "Cache-Control"],
    "Access-Control-Expose-Headers": ["Docker-Content-Digest"],
    "Access-Control-Allow-Credentials": ["true"],
    "X-Plain": ["a plain string"],
}


def auth_header():
    return {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


class Cors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_tools("htpasswd", "skopeo", "docker-registry")
        cls.work, cls.up = started_upstream("cors", cls.addClassCleanup)
        fixtures.push(cls.up, cls.work, "docker2")
        cls.image = fixtures.describe(cls.up, "docker2")
        cls.htpasswd = os.path.join(cls.work, "htpasswd")
        harness.write_htpasswd(cls.htpasswd, (USER, PASSWORD))
        os.makedirs(os.path.join(cls.work, "m"))
        cls.mirror = Mirror(os.path.join(cls.work, "m"), cls.up.url, env={
            **CORS_ENV,
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_PATH": cls.htpasswd,
            "HUBCACHE_ADMIN_TOKEN": "cors-test-admin-token",
        })
        cls.addClassCleanup(cls.mirror.stop)
        cls.mirror.start()

    def assertConfigured(self, r):
        for name, values in EXPECTED.items():
            self.assertEqual(r.headers.get_all(name), values, f"{name} on {r!r}")
        self.assertEqual(r.header("Docker-Distribution-API-Version"), "registry/2.0")

    def req(self, method, path, headers=None, body=None):
        return harness.request(self.mirror.url, method, path, headers=headers, body=body)

    def test_fields_on_every_kind_of_answer(self):
        cases = [
            ("/v2/ with credentials", "/v2/", auth_header(), 200),
            ("/v2/ without credentials", "/v2/", {}, 401),
            ("manifest GET", f"/v2/{self.image.repo}/manifests/{self.image.tag}",
             {**auth_header(), "Accept": harness.ACCEPT_ALL}, 200),
            ("unknown manifest", f"/v2/{self.image.repo}/manifests/no-such-tag",
             {**auth_header(), "Accept": harness.ACCEPT_ALL}, 404),
            ("unknown route", "/v2/no/such/route", auth_header(), 400),  # NAME_INVALID
            ("tags list", f"/v2/{self.image.repo}/tags/list", auth_header(), 200),
            ("healthz", "/healthz", {}, 200),
            ("admin API without its token", "/admin/images", {}, 401),
        ]
        for what, path, headers, status in cases:
            with self.subTest(what):
                r = self.req("GET", path, headers)
                self.assertEqual(r.status, status, r)
                self.assertConfigured(r)

    def test_manifest_get_keeps_its_digest(self):
        r = self.req("GET", f"/v2/{self.image.repo}/manifests/{self.image.tag}",
                     {**auth_header(), "Accept": harness.ACCEPT_ALL})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Docker-Content-Digest"), self.image.digest)
        self.assertEqual(r.body, self.image.raw)

    def test_preflight_needs_no_credentials(self):
        preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "authorization,accept"}
        for path in ("/v2/", "/v2/_catalog", f"/v2/{self.image.repo}/manifests/1",
                     f"/v2/{self.image.repo}/blobs/sha256:{'0' * 64}", "/admin/images",
                     "/stats", "/anything"):
            with self.subTest(path):
                r = self.req("OPTIONS", path, preflight)
                self.assertIn(r.status, (200, 204), r)
                self.assertTrue(r.header("Allow"), r)
                self.assertIn("OPTIONS", r.header("Allow"))
                self.assertConfigured(r)
                self.assertIsNone(r.header("WWW-Authenticate"))
        # The other methods keep their auth.
        r = self.req("GET", f"/v2/{self.image.repo}/manifests/1", {"Origin": ORIGIN})
        self.assertEqual(r.status, 401, r)
        self.assertConfigured(r)
        self.assertEqual(self.req("HEAD", "/v2/", {"Origin": ORIGIN}).status, 401)

    def test_preflight_body_stays_unread(self):
        r = self.req("OPTIONS", "/v2/", {"Content-Type": "text/plain"}, body=b"GET /v2/ HTTP/1.1\r\n")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Connection"), "close")
        self.assertConfigured(r)
        # The mirror still serves afterwards.
        self.assertEqual(self.req("GET", "/v2/", auth_header()).status, 200)

    def test_check_config_lists_the_headers(self):
        r = run_cli("check-config", env={**CORS_ENV, "REGISTRY_HTTP_ADDR": ":5000"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("REGISTRY_HTTP_HEADERS", r.stderr)  # not "not a hubcache setting"
        self.assertIn("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Methods", r.stdout)
        self.assertIn('["HEAD", "GET", "OPTIONS", "DELETE"]', r.stdout)
        # The same from an env file (names with '-', values in quotes).
        env_file = os.path.join(self.work, "cors.env")
        with open(env_file, "w") as f:
            for name, value in CORS_ENV.items():
                f.write(f"{name}='{value}'\n" if "'" not in value else f"{name}={value}\n")
        r = run_cli("check-config", "--env-file", env_file, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = {row["env"]: row["value"] for row in json.loads(r.stdout)}
        self.assertEqual(rows["REGISTRY_HTTP_HEADERS_Access-Control-Allow-Headers"],
                         '["Authorization", "Accept", "Cache-Control"]')
        self.assertEqual(rows["REGISTRY_HTTP_HEADERS_X-Plain"], '["a plain string"]')

    def test_bad_settings_refused_in_one_line(self):
        cases = [
            ("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", '["https://ui.example"'),
            ("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", '["https://ui.example]'),
            ("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", "[a\"b]"),
            ("REGISTRY_HTTP_HEADERS_X-Evil", "ok\r\nSet-Cookie: stolen=1"),
            ("REGISTRY_HTTP_HEADERS_X-Evil", "[\"a\x01\"]"),
            ("REGISTRY_HTTP_HEADERS_Content-Length", "[0]"),
            ("REGISTRY_HTTP_HEADERS_Transfer-Encoding", "chunked"),
            ("REGISTRY_HTTP_HEADERS_Connection", "[close]"),
            ("REGISTRY_HTTP_HEADERS_Bad(Name)", "[x]"),
            ("REGISTRY_HTTP_HEADERS_X-Empty", "[]"),
        ]
        for variable, value in cases:
            with self.subTest(variable=variable, value=value):
                env = {variable: value}
                serve = subprocess.run(
                    [hubcache_bin(), "serve", "--addr", f"127.0.0.1:{free_port()}",
                     "--upstream", self.up.url, "--root", os.path.join(self.work, "bad")],
                    env={**_clean(), **env}, capture_output=True, text=True, timeout=30)
                self.assertEqual(serve.returncode, 2, serve.stderr)
                lines = serve.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, serve.stderr)
                self.assertIn(variable + ":", lines[0])
                check = run_cli("check-config", env=env, timeout=30)
                self.assertEqual(check.returncode, 2, check.stderr)
                self.assertEqual(len(check.stderr.strip().splitlines()), 1, check.stderr)
                self.assertIn(variable + ":", check.stderr)


def _clean():
    return {k: v for k, v in os.environ.items()
            if not (k.startswith("REGISTRY_") or k.startswith("HUBCACHE_"))}


if __name__ == "__main__":
    harness.run_module(__file__)
