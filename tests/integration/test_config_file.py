"""The CNCF registry's config.yml, as operators keep it for registry:2 (TLS, htpasswd, storage
root, proxy remoteurl, delete enabled, and keys hubcache has no use for), starts hubcache
unchanged: the same file first starts Debian's docker-registry (so it is a real registry:2
configuration), then `hubcache serve FILE` with nothing else set serves HTTPS with htpasswd
auth, the configured response header, the cache under the file's root, and pulls
byte-identical to the upstream. `check-config FILE` prints what it took and what it ignored;
a malformed file gets one line with the file, line and key, and exit 2.
"""
import os
import ssl
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
from harness import compare_dirs, skopeo  # noqa: E402
from mirror import Mirror, free_port, run_cli, wait_until  # noqa: E402
from upstream import started_upstream  # noqa: E402

USER, PASSWORD = "ci", "ci-secret-1"


class S:
    work = None


def setUpModule():
    harness.require_tools("docker-registry", "skopeo", "htpasswd", "openssl")
    S.work, S.up = started_upstream("config-file", unittest.addModuleCleanup)
    fixtures.push(S.up, S.work, "docker2")
    S.cert, S.key = harness.make_cert(S.work, "domain")
    S.htpasswd = harness.write_htpasswd(os.path.join(S.work, "htpasswd"), (USER, PASSWORD))
    S.port = free_port()
    S.root = os.path.join(S.work, "registry-data")
    S.config = os.path.join(S.work, "config.yml")
    with open(S.config, "w") as f:
        f.write(f"""version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {S.root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{S.port}
  secret: a-secret-for-the-upload-state
  headers:
    X-Content-Type-Options: [nosniff]
  tls:
    certificate: {S.cert}
    key: {S.key}
auth:
  htpasswd:
    realm: basic-realm
    path: {S.htpasswd}
proxy:
  remoteurl: {S.up.url}
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
""")


def https_status(url, auth=None):
    ctx = ssl.create_default_context(cafile=S.cert)
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", harness.basic_auth(*auth))
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}


class ConfigFile(unittest.TestCase):
    def test_1_the_file_is_one_registry_2_takes(self):
        """The CNCF registry itself starts with it and asks for Basic auth over TLS."""
        log = open(os.path.join(S.work, "cncf.log"), "ab")
        proc = subprocess.Popen(["docker-registry", "serve", S.config], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            def answers():
                if proc.poll() is not None:
                    raise AssertionError(f"docker-registry exited with {proc.returncode}")
                try:
                    return https_status(f"https://127.0.0.1:{S.port}/v2/")
                except OSError:
                    return None
            status, headers = wait_until(answers, 30, "docker-registry to answer over TLS")
            self.assertEqual(status, 401)
            self.assertIn('Basic realm="basic-realm"', headers.get("www-authenticate", ""))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()

    def test_2_hubcache_serves_it_unchanged(self):
        m = Mirror(S.work, S.up.url, tls=True, port=S.port)
        m.args = [m.args[0], "serve", S.config]  # the file and nothing else
        m.start()
        self.addCleanup(m.stop)
        url = f"https://127.0.0.1:{S.port}"
        status, headers = https_status(url + "/v2/")
        self.assertEqual(status, 401)
        self.assertIn('Basic realm="basic-realm"', headers.get("www-authenticate", ""))
        status, headers = https_status(url + "/v2/", auth=(USER, PASSWORD))
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("x-content-type-options"), "nosniff")
        # A pull with the htpasswd user, verified against the certificate, is the upstream's.
        certs = os.path.join(S.work, "certs")
        os.makedirs(certs, exist_ok=True)
        with open(os.path.join(certs, "ca.crt"), "w") as f, open(S.cert) as c:
            f.write(c.read())
        via = os.path.join(S.work, "via-hubcache")
        skopeo(S.work, [], ["copy", "--src-cert-dir", certs, "--src-creds", f"{USER}:{PASSWORD}",
                            f"docker://127.0.0.1:{S.port}/library/docker2:1", f"dir:{via}"])
        direct = os.path.join(S.work, "direct")
        harness.skopeo_copy(S.work, S.up.host, "library/docker2:1", direct, all_platforms=False)
        self.assertEqual(compare_dirs(via, direct), [])
        # The cache is under the file's root directory.
        self.assertTrue(harness.cache_objects(S.root))
        log = m.log()
        self.assertIn(f"configuration file {S.config}", log)
        self.assertRegex(log, r"health \(line \d+\) is not a hubcache setting: ignored")

    def test_3_check_config_says_what_it_took_and_ignored(self):
        r = run_cli("check-config", S.config)
        self.assertEqual(r.returncode, 0, r.stderr)
        for key, env in (("http.addr", "REGISTRY_HTTP_ADDR"),
                         ("http.tls.certificate", "REGISTRY_HTTP_TLS_CERTIFICATE"),
                         ("auth.htpasswd", "REGISTRY_AUTH"),
                         ("auth.htpasswd.path", "REGISTRY_AUTH_HTPASSWD_PATH"),
                         ("storage.filesystem.rootdirectory",
                          "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"),
                         ("storage.delete.enabled", "REGISTRY_STORAGE_DELETE_ENABLED"),
                         ("proxy.remoteurl", "REGISTRY_PROXY_REMOTEURL"),
                         ("http.headers.X-Content-Type-Options",
                          "REGISTRY_HTTP_HEADERS_X-Content-Type-Options")):
            self.assertRegex(r.stdout, rf"took +{key.replace('.', '[.]')} \(line \d+\) as {env}\n")
        for key in ("log.formatter", "log.fields", "storage.cache", "http.secret", "health"):
            self.assertRegex(r.stdout, rf"ignored {key.replace('.', '[.]')} \(line \d+\): not a "
                                       "hubcache setting")
        self.assertRegex(r.stdout, r"\* REGISTRY_STORAGE_DELETE_ENABLED +--delete-enabled +true")
        # The environment wins over the file, and says so.
        r = run_cli("check-config", S.config, env={"REGISTRY_LOG_LEVEL": "debug"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("took    log.level (line 3) as REGISTRY_LOG_LEVEL (the environment's "
                      "value wins)", r.stdout)
        self.assertRegex(r.stdout, r"\* REGISTRY_LOG_LEVEL +--log-level +debug")

    def test_4_a_malformed_file_is_one_line_with_file_line_and_key(self):
        cases = [
            ("http:\n  addr: [\":5000\"\n", ":3: not valid YAML"),
            ("http:\n  addr: :5000\n  addr: :6000\n", ":3: http.addr: duplicate key"),
            ("http:\n  addr: 127.0.0.1:99999\n", ":2: http.addr: --addr/REGISTRY_HTTP_ADDR"),
            ("storage:\n  azure:\n    accountname: a\n", ":2: storage.azure: storage driver"),
            ("auth:\n  token:\n    realm: x\n", ":2: auth.token: auth type 'token'"),
            ("proxy:\n  remoteurl: ftp://example\n", ":2: proxy.remoteurl:"),
            ("hubcache:\n  cache_max_size: lots\n", ":2: hubcache.cache_max_size:"),
            ("hubcache:\n  upstreams:\n    - name: ghcr.io\n", ":3: hubcache.upstreams: each "
                                                              "upstream needs a name and a url"),
        ]
        for i, (text, expected) in enumerate(cases):
            path = os.path.join(S.work, f"bad-{i}.yml")
            with open(path, "w") as f:
                f.write(text)
            for command in ("check-config", "serve"):
                with self.subTest(text=text, command=command):
                    r = run_cli(command, path, timeout=10)
                    self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                    self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
                    self.assertIn(path + expected, r.stderr)
        r = run_cli("serve", env={"REGISTRY_CONFIGURATION_PATH": os.path.join(S.work, "none.yml")},
                    timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("none.yml: cannot read the configuration file", r.stderr)


if __name__ == "__main__":
    harness.run_module(__file__)
