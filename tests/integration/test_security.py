"""TLS, htpasswd client auth and admin separation (issue 6), against the real
token-auth upstream: skopeo pulls over HTTPS with --src-cert-dir, TLS 1.0/1.1
refused, htpasswd -B users (right, wrong, missing password), admin refused to
a pull user, bad TLS/htpasswd files refused at start, the certificate
re-read on SIGHUP, and the mirror never forwarding client credentials."""
import base64
import http.client
import os
import shutil
import signal
import ssl
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
from mirror import Mirror, free_port, hubcache_bin, wait_until  # noqa: E402
from upstream import Upstream  # noqa: E402

PULL_USER, PULL_PASSWORD = "puller", "pull-secret-1"
ADMIN_USER, ADMIN_PASSWORD = "boss", "admin-secret-2"


def make_cert(directory, name):
    """A self-signed certificate for 127.0.0.1 (and its key), as PEM files."""
    cert, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", "2", "-keyout", key, "-out", cert, "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(url, headers=None, context=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def peer_certificate(port):
    with ssl.create_connection(("127.0.0.1", port), timeout=10) as raw:
        ctx = ssl._create_unverified_context()
        with ctx.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


class Security(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_tools("openssl", "htpasswd", "skopeo", "docker-registry")
        cls.work, cleanup = harness.module_workdir("security")
        cls.addClassCleanup(cleanup)
        cls.up = Upstream(cls.work)
        cls.addClassCleanup(cls.up.stop)
        cls.up.start()
        fixtures.push(cls.up, cls.work, "docker2")
        cls.image = fixtures.describe(cls.up, "docker2")
        cls.cert, cls.key = make_cert(cls.work, "mirror")
        cls.htpasswd = os.path.join(cls.work, "htpasswd")
        subprocess.run(["htpasswd", "-B", "-b", "-c", cls.htpasswd, PULL_USER, PULL_PASSWORD],
                       check=True, capture_output=True)
        subprocess.run(["htpasswd", "-B", "-b", cls.htpasswd, ADMIN_USER, ADMIN_PASSWORD],
                       check=True, capture_output=True)
        os.makedirs(os.path.join(cls.work, "m"))
        cls.mirror = Mirror(os.path.join(cls.work, "m"), cls.up.url, tls=True, env={
            "REGISTRY_HTTP_TLS_CERTIFICATE": cls.cert,
            "REGISTRY_HTTP_TLS_KEY": cls.key,
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_PATH": cls.htpasswd,
            "REGISTRY_AUTH_HTPASSWD_REALM": "hubcache-test",
            "HUBCACHE_ADMIN_USERS": ADMIN_USER,
        })
        cls.addClassCleanup(cls.mirror.stop)
        cls.mirror.start()
        cls.ctx = ssl.create_default_context(cafile=cls.cert)

    def test_v2_needs_credentials_with_basic_challenge(self):
        status, headers, body = get(self.mirror.url + "/v2/", context=self.ctx)
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("WWW-Authenticate"), 'Basic realm="hubcache-test"')
        self.assertIn(b'"UNAUTHORIZED"', body)
        status, _, _ = get(self.mirror.url + "/v2/", {"Authorization": basic(PULL_USER, PULL_PASSWORD)},
                           self.ctx)
        self.assertEqual(status, 200)

    def test_wrong_password_gets_401_and_no_data(self):
        blob = self.image.layers[0]
        for auth in (basic(PULL_USER, "wrong"), basic("nobody", PULL_PASSWORD), None):
            headers = {"Authorization": auth} if auth else {}
            status, _, body = get(f"{self.mirror.url}/v2/library/docker2/blobs/{blob}", headers, self.ctx)
            self.assertEqual(status, 401, auth)
            self.assertLess(len(body), 200)
        self.assertIn("authentication failed", self.mirror.log())

    def test_skopeo_pulls_over_tls_with_credentials(self):
        certs = os.path.join(self.work, "certs.d")
        os.makedirs(certs, exist_ok=True)
        shutil.copy(self.cert, os.path.join(certs, "ca.crt"))
        out = os.path.join(self.work, "pulled")
        harness.skopeo(self.work, [], [
            "copy", "--src-cert-dir", certs, "--src-creds", f"{PULL_USER}:{PULL_PASSWORD}",
            f"docker://127.0.0.1:{self.mirror.port}/library/docker2:1", f"dir:{out}"])
        for digest in self.image.layers:
            self.assertEqual(harness.file_sha256(os.path.join(out, digest.split(":")[1])), digest)
        # The mirror used its own (anonymous) upstream identity, never the client's.
        with open(self.up.token_log) as f:
            self.assertNotIn(PULL_USER, f.read())
        with self.assertRaises(harness.SkopeoError):
            harness.skopeo(self.work, [], [
                "copy", "--src-cert-dir", certs, "--src-creds", f"{PULL_USER}:nope",
                f"docker://127.0.0.1:{self.mirror.port}/library/docker2:1",
                f"dir:{os.path.join(self.work, 'refused')}"])

    def test_old_tls_versions_refused(self):
        for flag in ("-tls1", "-tls1_1"):
            p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.mirror.port}", flag,
                                "-cipher", "DEFAULT@SECLEVEL=0"],
                               input=b"", capture_output=True, timeout=30)
            self.assertNotEqual(p.returncode, 0, f"{flag} handshake succeeded")
        p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.mirror.port}", "-tls1_2"],
                           input=b"", capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-500:])

    def test_admin_refused_to_pull_user_and_open_to_admin_user(self):
        url = self.mirror.url + "/admin/images"
        status, _, _ = get(url, {"Authorization": basic(PULL_USER, PULL_PASSWORD)}, self.ctx)
        self.assertEqual(status, 401)
        status, _, _ = get(url, {}, self.ctx)
        self.assertEqual(status, 401)
        status, _, body = get(url, {"Authorization": basic(ADMIN_USER, ADMIN_PASSWORD)}, self.ctx)
        self.assertEqual(status, 200, body)
        self.assertIn(b'"images"', body)

    def test_stats_follow_client_auth_but_health_does_not(self):
        self.assertEqual(get(self.mirror.url + "/stats", context=self.ctx)[0], 401)
        self.assertEqual(get(self.mirror.url + "/healthz", context=self.ctx)[0], 200)
        status, _, _ = get(self.mirror.url + "/stats", {"Authorization": basic(PULL_USER, PULL_PASSWORD)},
                           self.ctx)
        self.assertEqual(status, 200)

    def test_sighup_reloads_certificate_without_dropping_connections(self):
        before = peer_certificate(self.mirror.port)
        new_cert, new_key = make_cert(self.work, "rotated")
        shutil.copy(new_cert, self.cert)
        shutil.copy(new_key, self.key)
        # A connection opened before the reload keeps working across it.
        ctx = ssl._create_unverified_context()
        conn = http.client.HTTPSConnection("127.0.0.1", self.mirror.port, context=ctx, timeout=20)
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        first.read()
        self.assertEqual(first.status, 200)
        self.mirror.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: peer_certificate(self.mirror.port) != before, 20, "new certificate")
        conn.request("GET", "/healthz")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        self.assertIn("TLS certificate and key reloaded", self.mirror.log())
        # Later tests verify against the certificate now served.
        type(self).ctx = ssl.create_default_context(cafile=self.cert)


class UpstreamTrust(unittest.TestCase):
    """Upstream TLS is verified by default; REGISTRY_PROXY_CA trusts a private CA;
    HUBCACHE_UPSTREAM_INSECURE skips verification (and is warned about)."""

    @classmethod
    def setUpClass(cls):
        import http.server
        import threading
        cls.work, cleanup = harness.module_workdir("security-upstream")
        cls.addClassCleanup(cleanup)
        cls.cert, cls.key = make_cert(cls.work, "upstream")

        class NotFound(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cls.cert, cls.key)
        cls.server.socket = ctx.wrap_socket(cls.server.socket, server_side=True)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.addClassCleanup(cls.server.shutdown)
        cls.upstream_url = f"https://127.0.0.1:{cls.server.server_address[1]}"

    def status_through_mirror(self, env):
        d = os.path.join(self.work, f"m{len(os.listdir(self.work))}")
        os.makedirs(d)
        m = Mirror(d, self.upstream_url, env=env)
        m.start()
        try:
            status, _, body = get(m.url + "/v2/library/x/manifests/1")
            return status, body, m.log()
        finally:
            m.stop()

    def test_verified_by_default(self):
        status, body, _ = self.status_through_mirror({})
        self.assertIn(status, (502, 503), body)

    def test_private_ca_trusted(self):
        status, body, _ = self.status_through_mirror({"REGISTRY_PROXY_CA": self.cert})
        self.assertEqual(status, 404, body)
        self.assertIn(b"MANIFEST_UNKNOWN", body)

    def test_insecure_flag_skips_verification_with_a_warning(self):
        status, body, log = self.status_through_mirror({"HUBCACHE_UPSTREAM_INSECURE": "true"})
        self.assertEqual(status, 404, body)
        self.assertIn("verification is OFF", log)


class StartupRefusals(unittest.TestCase):
    def setUp(self):
        self.work, cleanup = harness.module_workdir("security-start")
        self.addCleanup(cleanup)

    def serve(self, env):
        full = {k: v for k, v in os.environ.items()
                if not k.startswith("REGISTRY_") and not k.startswith("HUBCACHE_")}
        full.update(env)
        return subprocess.run([hubcache_bin(), "serve", "--addr", f"127.0.0.1:{free_port()}",
                               "--root", os.path.join(self.work, "c")],
                              env=full, capture_output=True, text=True, timeout=30)

    def test_bad_tls_and_htpasswd_files_stop_the_start(self):
        cert, key = make_cert(self.work, "a")
        other_cert, other_key = make_cert(self.work, "b")
        junk = os.path.join(self.work, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a pem\n")
        plain_htpasswd = os.path.join(self.work, "plain")
        with open(plain_htpasswd, "w") as f:
            f.write("user:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
        cases = [
            ({"REGISTRY_HTTP_TLS_CERTIFICATE": cert}, "go together"),
            ({"REGISTRY_HTTP_TLS_CERTIFICATE": cert, "REGISTRY_HTTP_TLS_KEY": "/nonexistent"}, "missing"),
            ({"REGISTRY_HTTP_TLS_CERTIFICATE": junk, "REGISTRY_HTTP_TLS_KEY": key}, "not a PEM"),
            ({"REGISTRY_HTTP_TLS_CERTIFICATE": cert, "REGISTRY_HTTP_TLS_KEY": other_key}, "does not match"),
            ({"REGISTRY_AUTH": "htpasswd"}, "REGISTRY_AUTH_HTPASSWD_PATH"),
            ({"REGISTRY_AUTH": "token"}, "only htpasswd"),
            ({"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": "/nonexistent"}, "cannot be read"),
            ({"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": plain_htpasswd}, "no bcrypt"),
            ({"HUBCACHE_STATS_ACCESS": "auth"}, "needs client authentication"),
        ]
        del other_cert
        for env, mention in cases:
            with self.subTest(env=env):
                r = self.serve(env)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(mention, r.stderr)


if __name__ == "__main__":
    harness.run_module(__file__)
