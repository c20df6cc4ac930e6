#!/usr/bin/env python3
"""A Docker-Hub-style token server for the integration tests' upstream registry.

Run as its own process (Upstream starts it); it is not imported by tests.

  GET  /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]  [Authorization: Basic]
  POST /token  (OAuth2 form: grant_type=password&username=&password=&service=&scope=)
  GET  /_stats  counters as JSON

Grants: anonymous requests get `pull` only; the one push user (--user U:P) gets `pull,push`;
a wrong password gets 401. A scope asking for more gets a token with the extra actions left
out, as Docker Hub does. Tokens are RS256 JWTs whose header `kid` is the libtrust key id of
the signing key, which is how distribution 2.8 picks the key out of its rootcertbundle.

Every token request appends one JSON line to --log: {"t", "user", "scopes", "granted",
"status", "ua"}. Signing uses the `cryptography` package when it is importable and falls
back to `openssl dgst`, so any python3 can run this file.
"""
import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_LIFETIME_S = 300


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def spki_der(key_path):
    """DER SubjectPublicKeyInfo of the private key in key_path."""
    return subprocess.run(["openssl", "pkey", "-in", key_path, "-pubout", "-outform", "DER"],
                          check=True, capture_output=True, timeout=30).stdout


def libtrust_kid(der_spki):
    """base32 of the first 240 bits of SHA-256(DER SPKI), as 12 ':'-separated groups of 4."""
    b32 = base64.b32encode(hashlib.sha256(der_spki).digest()[:30]).decode()
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


class Signer:
    """RS256 signatures with the PEM private key at key_path."""

    def __init__(self, key_path):
        self.key_path = key_path
        self._key = None
        try:
            from cryptography.hazmat.primitives import serialization
            with open(key_path, "rb") as f:
                self._key = serialization.load_pem_private_key(f.read(), password=None)
        except ImportError:
            pass

    def sign(self, data):
        if self._key is not None:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key_path],
                              input=data, check=True, capture_output=True, timeout=30).stdout


def parse_scope(scope):
    """'repository:library/x:pull,push' -> ('repository', 'library/x', ['pull', 'push'])."""
    first, last = scope.find(":"), scope.rfind(":")
    if first < 0 or last <= first:
        return None
    actions = [a for a in scope[last + 1:].split(",") if a]
    return scope[:first], scope[first + 1:last], actions


class TokenState:
    def __init__(self, args):
        self.args = args
        self.signer = Signer(args.key)
        self.kid = libtrust_kid(spki_der(args.key))
        self.push_user, _, self.push_password = args.user.partition(":")
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "issued": 0, "denied": 0, "by_user": {}, "by_scope": {}}
        self.log = open(args.log, "a", buffering=1)

    def record(self, entry):
        with self.lock:
            s = self.stats
            s["requests"] += 1
            s["issued" if entry["status"] == 200 else "denied"] += 1
            s["by_user"][entry["user"]] = s["by_user"].get(entry["user"], 0) + 1
            for scope in entry["scopes"]:
                s["by_scope"][scope] = s["by_scope"].get(scope, 0) + 1
            self.log.write(json.dumps(entry, sort_keys=True) + "\n")

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.stats))

    def allowed_actions(self, user):
        return {"pull", "push"} if user == self.push_user else {"pull"}

    def issue(self, user, service, scopes):
        access = []
        allowed = self.allowed_actions(user)
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None or parsed[0] != "repository":
                continue
            kind, name, actions = parsed
            access.append({"type": kind, "name": name,
                           "actions": [a for a in actions if a in allowed]})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        claims = {"iss": self.args.issuer, "sub": user, "aud": service or self.args.service,
                  "exp": now + TOKEN_LIFETIME_S, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        token = signing_input + "." + b64url(self.signer.sign(signing_input.encode()))
        issued_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME_S,
                "issued_at": issued_at}, access


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hubcache-test-tokenserver"

    def log_message(self, fmt, *args):  # the JSON log replaces the stderr access log
        pass

    def send_json(self, status, obj, extra_headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def basic_credentials(self):
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return ("", "")
        return user, password

    def answer(self, creds, service, scopes):
        state = self.server.state
        user = "anonymous"
        entry = {"t": time.time(), "scopes": scopes, "ua": self.headers.get("User-Agent", ""),
                 "granted": []}
        if creds is not None:
            if creds != (state.push_user, state.push_password):
                entry.update(user=creds[0] or "?", status=401)
                state.record(entry)
                self.send_json(401, {"details": "incorrect username or password"},
                               [("WWW-Authenticate", 'Basic realm="hubcache-test"')])
                return
            user = creds[0]
        body, access = state.issue(user, service, scopes)
        entry.update(user=user, status=200, granted=access)
        state.record(entry)
        self.send_json(200, body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_stats":
            self.send_json(200, self.server.state.snapshot())
            return
        if url.path != "/token":
            self.send_json(404, {"details": "not found"})
            return
        q = urllib.parse.parse_qs(url.query)
        scopes = [s for raw in q.get("scope", []) for s in raw.split(" ") if s]
        self.answer(self.basic_credentials(), q.get("service", [""])[0], scopes)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self.send_json(404, {"details": "not found"})
            return
        length = int(self.headers.get("Content-Length", "0") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(min(length, 1 << 16)).decode(errors="replace"))
        scopes = [s for raw in form.get("scope", []) for s in raw.split(" ") if s]
        creds = None
        if form.get("grant_type", [""])[0] == "password":
            creds = (form.get("username", [""])[0], form.get("password", [""])[0])
        self.answer(creds, form.get("service", [""])[0], scopes)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="written with the bound port once listening")
    p.add_argument("--key", required=True, help="PEM RSA private key that signs tokens")
    p.add_argument("--issuer", default="auth.docker.io")
    p.add_argument("--service", default="registry.docker.io")
    p.add_argument("--user", default="pusher:pushpass", help="USER:PASSWORD granted push")
    p.add_argument("--log", required=True, help="one JSON line per token request is appended")
    args = p.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = TokenState(args)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
