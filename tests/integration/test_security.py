"""TLS, htpasswd client auth and admin separation (issue 6), against the real
token-auth upstream: skopeo pulls over HTTPS with --src-cert-dir, TLS 1.0/1.1
refused, htpasswd -B users (right, wrong, missing password), admin refused to
a pull user, bad TLS/htpasswd files refused at start, the certificate
re-read on SIGHUP, and the mirror never forwarding client credentials.

Credentials (issue 12): a password followed by NUL and garbage, control bytes,
any scheme but `Basic` + spaces, and two Authorization fields are refused; an
unknown user is answered no faster than a known one with a wrong password (no
user enumeration by timing). The readiness probe trusts the upstream the way
the registry traffic does (REGISTRY_PROXY_CA, HUBCACHE_UPSTREAM_INSECURE)."""
import base64
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import statistics
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
from mirror import Mirror, free_port, hubcache_bin, wait_until  # noqa: E402
from upstream import started_upstream  # noqa: E402

PULL_USER, PULL_PASSWORD = "puller", "pull-secret-1"
ADMIN_USER, ADMIN_PASSWORD = "boss", "admin-secret-2"


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def raw_exchange(port, head_lines, timeout=20):
    """Sends `GET /v2/` with exactly these header lines on a plain connection; returns
    (status, parsed JSON body or None). http.client would refuse some of these headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", "/v2/", skip_accept_encoding=True)
        for name, value in head_lines:
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        return r.status, doc
    finally:
        conn.close()


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
        cls.work, cls.up = started_upstream("security", cls.addClassCleanup)
        fixtures.push(cls.up, cls.work, "docker2")
        cls.image = fixtures.describe(cls.up, "docker2")
        cls.cert, cls.key = harness.make_cert(cls.work, "mirror")
        cls.htpasswd = os.path.join(cls.work, "htpasswd")
        harness.write_htpasswd(cls.htpasswd, (PULL_USER, PULL_PASSWORD),
                               (ADMIN_USER, ADMIN_PASSWORD))
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
        new_cert, new_key = harness.make_cert(self.work, "rotated")
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


class Credentials(unittest.TestCase):
    """What counts as credentials: each test gets its own plain-HTTP mirror, so that no
    test's failed attempts (10 a minute per address, then 429) spill into another's."""

    @classmethod
    def setUpClass(cls):
        cls.work, cleanup = harness.module_workdir("security-credentials")
        cls.addClassCleanup(cleanup)
        cls.htpasswd = os.path.join(cls.work, "htpasswd")
        # -C 10: a bcrypt check takes tens of ms, far above a request's own cost, so the
        # timing test sees the difference an unknown user would make.
        harness.write_htpasswd(cls.htpasswd, (PULL_USER, PULL_PASSWORD), cost=10)

    def mirror(self):
        d = os.path.join(self.work, f"m{len(os.listdir(self.work))}")
        os.makedirs(d)
        # The upstream is never asked: /v2/ is answered by the mirror itself.
        m = Mirror(d, f"http://127.0.0.1:{free_port()}", env={
            "REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": self.htpasswd})
        self.addCleanup(m.stop)
        m.start()
        return m

    def encoded(self, raw):
        return base64.b64encode(raw).decode()

    def test_control_bytes_in_credentials_refused(self):
        m = self.mirror()
        good = f"{PULL_USER}:{PULL_PASSWORD}".encode()
        self.assertEqual(raw_exchange(m.port, [("Authorization", "Basic " + self.encoded(good))])[0],
                         200)
        for raw in (good + b"\0garbage", good + b"\0", good + b"\n", good + b"\x7f",
                    f"{PULL_USER}\t:{PULL_PASSWORD}".encode()):
            with self.subTest(raw=raw):
                status, doc = raw_exchange(m.port,
                                           [("Authorization", "Basic " + self.encoded(raw))])
                self.assertEqual(status, 401, raw)
                self.assertEqual([e["code"] for e in doc["errors"]], ["UNAUTHORIZED"])

    def test_scheme_must_be_basic_then_spaces(self):
        m = self.mirror()
        token = self.encoded(f"{PULL_USER}:{PULL_PASSWORD}".encode())
        for value, want in ((f"Basic {token}", 200), (f"bAsIc   {token}", 200),
                            (f"Basic{token}", 401), (f"Basic\t{token}", 401),
                            (f"Basic: {token}", 401), (f"Basics {token}", 401),
                            (f"Bearer {token}", 401), (f"Basic {token} x", 401)):
            with self.subTest(value=value):
                self.assertEqual(raw_exchange(m.port, [("Authorization", value)])[0], want, value)

    def test_percent_encoded_scheme_refused(self):
        """`Basic%20<token>` is no Basic credential: header values are never percent-decoded
        (src/server/request_parser.h)."""
        m = self.mirror()
        token = self.encoded(f"{PULL_USER}:{PULL_PASSWORD}".encode())
        self.assertEqual(raw_exchange(m.port, [("Authorization", f"Basic%20{token}")])[0], 401)

    def test_two_authorization_fields_refused(self):
        """Authorization is a singleton field (RFC 9110 5.3, 11.6.2): two make a malformed
        request, refused with 400 and a registry error, whichever of them is valid."""
        m = self.mirror()
        good = basic(PULL_USER, PULL_PASSWORD)
        bad = basic(PULL_USER, "wrong")
        for pair in ((good, bad), (bad, good), (good, good)):
            with self.subTest(pair=pair):
                status, doc = raw_exchange(m.port, [("Authorization", v) for v in pair])
                self.assertEqual(status, 400, pair)
                self.assertEqual([e["code"] for e in doc["errors"]], ["UNAUTHORIZED"])
        self.assertEqual(raw_exchange(m.port, [("Authorization", good)])[0], 200)

    def test_unknown_user_takes_as_long_as_a_wrong_password(self):
        m = self.mirror()

        def seconds(user):
            t0 = time.monotonic()
            status, _ = raw_exchange(m.port, [("Authorization", basic(user, "wrong-password"))])
            elapsed = time.monotonic() - t0
            self.assertEqual(status, 401)
            return elapsed

        known, unknown = [], []
        for i in range(4):  # interleaved; 8 failures stay under the 10 a minute that block
            known.append(seconds(PULL_USER))
            unknown.append(seconds(f"nobody{i}"))
        k, u = statistics.median(known), statistics.median(unknown)
        self.assertGreater(k, 0.005, f"a bcrypt check of cost 10 took {k * 1000:.1f} ms?")
        self.assertGreaterEqual(u, k / 2, f"unknown user {u * 1000:.1f} ms, known user with a "
                                          f"wrong password {k * 1000:.1f} ms: names can be told")


class UpstreamTrust(unittest.TestCase):
    """Upstream TLS is verified by default; REGISTRY_PROXY_CA trusts a private CA;
    HUBCACHE_UPSTREAM_INSECURE skips verification (and is warned about)."""

    @classmethod
    def setUpClass(cls):
        import http.server
        import threading
        cls.work, cleanup = harness.module_workdir("security-upstream")
        cls.addClassCleanup(cleanup)
        cls.cert, cls.key = harness.make_cert(cls.work, "upstream")

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

    def started_mirror(self, env):
        """A started Mirror (in a fresh directory) of the test upstream, with `env`; the
        caller stops it."""
        d = os.path.join(self.work, f"m{len(os.listdir(self.work))}")
        os.makedirs(d)
        return Mirror(d, self.upstream_url, env=env).start()

    def status_through_mirror(self, env):
        m = self.started_mirror(env)
        try:
            status, _, body = get(m.url + "/v2/library/x/manifests/1")
            return status, body, m.log()
        finally:
            m.stop()

    def readiness_through_mirror(self, env):
        """/readyz's upstream section once its probe has answered."""
        m = self.started_mirror(env)
        try:
            out = {}

            def probed():
                status, _, body = get(m.url + "/readyz")
                out["status"], out["upstream"] = status, json.loads(body)["upstream"]
                return out["upstream"]["reachable"] is not None
            wait_until(probed, 20, "/readyz to report the upstream")
            return out["status"], out["upstream"]
        finally:
            m.stop()

    def test_verified_by_default(self):
        status, body, _ = self.status_through_mirror({})
        self.assertIn(status, (502, 503), body)
        status, upstream = self.readiness_through_mirror({})
        self.assertEqual(status, 200)  # reported, never required
        self.assertFalse(upstream["reachable"], upstream)
        self.assertIn("certificate", upstream["detail"].lower(), upstream)

    def test_private_ca_trusted(self):
        status, body, _ = self.status_through_mirror({"REGISTRY_PROXY_CA": self.cert})
        self.assertEqual(status, 404, body)
        self.assertIn(b"MANIFEST_UNKNOWN", body)
        _, upstream = self.readiness_through_mirror({"REGISTRY_PROXY_CA": self.cert})
        self.assertTrue(upstream["reachable"], upstream)
        self.assertEqual(upstream["status"], 404, upstream)

    def test_insecure_flag_skips_verification_with_a_warning(self):
        status, body, log = self.status_through_mirror({"HUBCACHE_UPSTREAM_INSECURE": "true"})
        self.assertEqual(status, 404, body)
        self.assertIn("verification is OFF", log)
        _, upstream = self.readiness_through_mirror({"HUBCACHE_UPSTREAM_INSECURE": "true"})
        self.assertTrue(upstream["reachable"], upstream)


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
        cert, key = harness.make_cert(self.work, "a")
        other_cert, other_key = harness.make_cert(self.work, "b")
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
