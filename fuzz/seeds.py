#!/usr/bin/python3
"""Writes the committed seed corpora, fuzz/corpus/<target>/<name>, from the
inputs below: what clients, Docker Hub and other registries really send, plus
the classic malformed variants. Re-run after editing; files the fuzzer found are
not kept here (scripts/fuzz.sh fuzzes a temp copy), regression inputs are.

    python3 fuzz/seeds.py
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))

ALPINE_INDEX = "sha256:c5b1261d6d3e43071626931fc004f70149baeba2c8ec672bd4f27761f8e1ad6b"
ALPINE_AMD64 = "sha256:6457d53fb065d6f250e1504b9bc42d5b6c65941d57532c072d929dd0628977d0"
LAYER = "sha256:4abcf20661432fb2d719aaf90656f55c287f8ca915dc1c92ec14ff61e67fbaf8"
CONFIG_DIGEST = "sha256:05455a08881ea9cf0e752bc48e61bbd71a34c029bb13df01e40e3e70e0d007bd"

REFERENCE = {
    # repository names as clients write them (and as routes carry them)
    "name_short": "alpine",
    "name_library": "library/alpine",
    "name_org": "bitnami/redis",
    "name_dashes": "prom/node-exporter",
    "name_dots": "grafana/grafana.oss",
    "name_underscores": "my_org/my__repo",
    "name_deep": "a/b/c/d/e",
    "name_triple_dash": "x---y/z",
    "name_upper": "Library/Alpine",
    "name_traversal": "../etc/passwd",
    "name_traversal_mid": "library/../../x",
    "name_dot_component": "library/.hidden",
    "name_double_slash": "library//alpine",
    "name_trailing_sep": "alpine-",
    "name_triple_underscore": "a___b",
    "name_max": "library/" + "a" * 247,
    "name_too_long": "a" * 250,
    # tags
    "tag_latest": "latest",
    "tag_version": "3.19",
    "tag_variant": "1.25.3-alpine3.18",
    "tag_underscore": "_v2.0.0_rc1",
    "tag_max": "T" * 128,
    "tag_too_long": "t" * 129,
    "tag_leading_dot": ".hidden",
    "tag_leading_dash": "-x",
    # digests
    "digest_index": ALPINE_INDEX,
    "digest_layer": LAYER,
    "digest_upper": ALPINE_INDEX.upper(),
    "digest_short": ALPINE_INDEX[:-1],
    "digest_sha512": "sha512:" + "ab" * 64,
    "digest_no_algo": ":" + "0" * 64,
    "digest_two_colons": "sha256:sha256:" + "0" * 57,
    # request paths
    "route_ping": "/v2/",
    "route_ping_bare": "/v2",
    "route_catalog": "/v2/_catalog",
    "route_manifest_tag": "/v2/library/alpine/manifests/3.19",
    "route_manifest_short": "/v2/alpine/manifests/latest",
    "route_manifest_digest": "/v2/library/alpine/manifests/" + ALPINE_AMD64,
    "route_blob": "/v2/library/alpine/blobs/" + LAYER,
    "route_tags": "/v2/bitnami/redis/tags/list",
    "route_upload_start": "/v2/library/alpine/blobs/uploads/",
    "route_upload_session": "/v2/library/alpine/blobs/uploads/6f1c2a3e-8a0b-4c5e-9d1f-2b3c4d5e6f70",
    "route_repo_named_like_marker": "/v2/a/manifests/b/manifests/c",
    "route_repo_named_blobs": "/v2/blobs/uploads/blobs/" + LAYER,
    "route_encoded_traversal": "/v2/%2e%2e/%2e%2e/manifests/latest",
    "route_traversal": "/v2/../../etc/manifests/passwd",
    "route_digest_traversal": "/v2/library/alpine/blobs/sha256:../../../index.db",
    "route_unknown": "/v2/library/alpine/referrers/" + LAYER,
    "route_other": "/healthz",
}

WWW_AUTHENTICATE = {
    "dockerhub": 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                 'scope="repository:library/alpine:pull"',
    "dockerhub_ping": 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
    "dockerhub_insufficient_scope":
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull",error="insufficient_scope"',
    "dockerhub_two_scopes": 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                            'scope="repository:library/alpine:pull repository:library/busybox:pull"',
    "ghcr": 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull"',
    "quay": 'Bearer realm="https://quay.io/v2/auth",service="quay.io"',
    "gcr": 'Bearer realm="https://gcr.io/v2/token",service="gcr.io",'
           'scope="repository:google-containers/pause:pull"',
    "harbor": 'Bearer realm="https://harbor.example.com/service/token",service="harbor-registry"',
    "ecr": 'Basic realm="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",'
           'service="ecr.amazonaws.com"',
    "distribution_htpasswd": 'Basic realm="Registry Realm"',
    "basic_then_bearer": 'Basic realm="x", Bearer realm="https://auth.example/token",service="y"',
    "bearer_no_realm_then_basic": 'Bearer service="y", Basic realm="fallback"',
    "upper_case": 'BEARER REALM="https://auth.docker.io/token",SERVICE="registry.docker.io"',
    "spaces_around_equals": 'Bearer realm = "https://a/token" , service = "s"',
    "unquoted_values": "Bearer realm=https://a/token,service=s",
    "escaped_quote": 'Bearer realm="https://a/tok\\"en",service="s\\\\x"',
    "unterminated_quote": 'Bearer realm="https://a/token,service="s',
    "token68": "Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEFoQMCAQ6iBwMFACAAAACj==",
    "newauth_and_basic": 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
    "empty_params": "Bearer ,,, realm=\"r\",,",
    "only_commas": ", , ,",
    "tab_separated": 'Bearer\trealm="r",\tservice="s"',
    "empty_value": 'Bearer realm="",service=""',
}

# "<entity size>\n<Range header>" (see range_fuzz.cpp)
RANGE = {
    "first_kib": "1048576\nbytes=0-1023",
    "curl_r": "1048576\nbytes=0-499",
    "resume_open": "31457280\nbytes=4194304-",
    "suffix": "1048576\nbytes=-500",
    "suffix_larger": "100\nbytes=-1000",
    "suffix_zero": "100\nbytes=-0",
    "last_byte": "100\nbytes=99-99",
    "past_end": "100\nbytes=100-200",
    "last_clamped": "100\nbytes=50-1000",
    "empty_entity": "0\nbytes=0-",
    "empty_entity_suffix": "0\nbytes=-1",
    "multi": "100\nbytes=0-0,5-9",
    "spaces_case": "100\nBytes = 5 - 9",
    "other_unit": "100\nitems=0-5",
    "reversed": "100\nbytes=9-5",
    "garbage": "100\nbytes=abc",
    "no_dash": "100\nbytes=5",
    "max_size": "18446744073709551615\nbytes=18446744073709551614-",
    "overflow_number": "18446744073709551615\nbytes=99999999999999999999-",
    "plus_sign": "100\nbytes=+5-9",
    "negative": "100\nbytes=-5-9",
    "empty_header": "100\n",
}

# Environment lines, an empty line, then one argument per line (see config_fuzz.cpp).
CONFIG = {
    "defaults_env": "REGISTRY_HTTP_ADDR=:5000\nREGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io\n"
                    "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry\n",
    "compose_env": "REGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io\n"
                   "REGISTRY_PROXY_USERNAME=mirrorbot\nREGISTRY_PROXY_PASSWORD=dckr_pat_xxxxxxxx\n"
                   "REGISTRY_LOG_LEVEL=warn\n",
    "flags": "\n--addr\n127.0.0.1:5000\n--root\n/tmp/cache\n--log-level=debug\n--max-connections\n64\n",
    "flags_override_env": "HUBCACHE_MAX_CONNECTIONS=8\n\n--max-connections=512\n",
    "durations": "HUBCACHE_TAG_FRESHNESS=0s\nHUBCACHE_UPSTREAM_CONNECT_TIMEOUT=250ms\n"
                 "HUBCACHE_UPSTREAM_STALL_TIMEOUT=30\nHUBCACHE_FILL_TIMEOUT=1h\n"
                 "HUBCACHE_KEEPALIVE_TIMEOUT=5m\nHUBCACHE_SHUTDOWN_GRACE=0\n"
                 "HUBCACHE_ACCESS_FLUSH_INTERVAL=200ms\nHUBCACHE_PREWARM_INTERVAL=6h\n",
    "sizes": "HUBCACHE_CACHE_MAX_SIZE=50GiB\nHUBCACHE_CACHE_LOW_WATERMARK=90%\nHUBCACHE_MIN_FREE=0.05\n",
    "size_units": "\n--cache-max-size\n1.5G\n--cache-max-size=500MB\n--cache-max-size=1024\n"
                  "--cache-max-size=7TiB\n",
    "fractions": "\n--cache-low-watermark=0.9\n--min-free=0%\n--cache-low-watermark=100%\n",
    "tls": "REGISTRY_HTTP_TLS_CERTIFICATE=/certs/domain.crt\nREGISTRY_HTTP_TLS_KEY=/certs/domain.key\n"
           "REGISTRY_HTTP_TLS_CLIENTCAS=/certs/ca.pem\n",
    "tls_half": "REGISTRY_HTTP_TLS_CERTIFICATE=/certs/domain.crt\n",
    "htpasswd": "REGISTRY_AUTH=htpasswd\nREGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd\n"
                "REGISTRY_AUTH_HTPASSWD_REALM=Registry Realm\nHUBCACHE_ADMIN_USERS=admin,ops\n",
    "htpasswd_no_path": "REGISTRY_AUTH=htpasswd\n",
    "admin_token": "HUBCACHE_ADMIN_TOKEN=0123456789abcdef0123\n\n--admin-token=short\n",
    "upstream_trust": "REGISTRY_PROXY_CA=/etc/ssl/private-ca.pem\nHUBCACHE_UPSTREAM_INSECURE=false\n"
                      "HUBCACHE_MAX_REQUESTS_PER_CLIENT=64\n",
    "access_log": "HUBCACHE_ACCESS_LOG=/var/log/hubcache/access.log\nHUBCACHE_ACCESS_LOG_FORMAT=json\n"
                  "HUBCACHE_STATS_ACCESS=open\n",
    "prewarm": "HUBCACHE_PREWARM_FILE=/etc/hubcache/images.txt\n\n--prewarm-interval\n30m\n",
    # REGISTRY_HTTP_HEADERS_<Name>: the joxit registry UI's CORS fields, and malformed lists
    "http_headers": "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin=[\"https://ui.example\"]\n"
                    "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Methods=[HEAD, GET, OPTIONS, DELETE]\n"
                    "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Headers=['Authorization', 'Accept']\n"
                    "REGISTRY_HTTP_HEADERS_X-Plain=a plain string\n",
    "http_headers_bad": "REGISTRY_HTTP_HEADERS_X-A=[\"unterminated\n"
                        "REGISTRY_HTTP_HEADERS_Content-Length=[1]\n",
    "bad_upstream": "\n--upstream\nhttps:///x\n",
    "bad_upstream_scheme": "REGISTRY_PROXY_REMOTEURL=ftp://registry-1.docker.io\n",
    "bad_addr": "REGISTRY_HTTP_ADDR=localhost\n\n--addr=:99999\n",
    "bad_max_connections": "\n--max-connections\n3\n",
    "bad_duration": "HUBCACHE_TAG_FRESHNESS=1d\n",
    "bad_size": "HUBCACHE_CACHE_MAX_SIZE=50 PB\n",
    "missing_value": "\n--root\n",
    "unknown_flag": "\n--no-such-flag=1\n",
    "huge_numbers": "\n--tag-freshness=999999999999h\n--cache-max-size=99999999999999999999TiB\n"
                    "--min-free=99999999999999999999%\n",
    # Regression: a long fraction made std::stod throw (uncaught) instead of an error.
    "long_fraction": "HUBCACHE_MIN_FREE=0." + "0" * 400 + "1\n\n--cache-low-watermark=1" + "0" * 400 + "%\n",
}

_ACCEPT_ALL = ("application/vnd.docker.distribution.manifest.v2+json, "
               "application/vnd.docker.distribution.manifest.list.v2+json, "
               "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")

MEDIA_TYPES = {
    # Accept headers (joined as servers see several Accept lines)
    "accept_containerd": _ACCEPT_ALL + ", */*",
    "accept_docker": "application/vnd.docker.distribution.manifest.v2+json, "
                     "application/vnd.docker.distribution.manifest.list.v2+json, "
                     "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
                     "application/vnd.docker.distribution.manifest.v1+prettyjws, application/json",
    "accept_skopeo": "application/vnd.oci.image.manifest.v1+json, "
                     "application/vnd.docker.distribution.manifest.v2+json, "
                     "application/vnd.docker.distribution.manifest.v1+prettyjws, "
                     "application/vnd.docker.distribution.manifest.v1+json, "
                     "application/vnd.docker.distribution.manifest.list.v2+json, "
                     "application/vnd.oci.image.index.v1+json",
    "accept_schema2_only": "application/vnd.docker.distribution.manifest.v2+json",
    "accept_qvalues": "application/vnd.oci.image.index.v1+json;q=0.5, "
                      "application/vnd.docker.distribution.manifest.v2+json; q=1.0, */*;q=0",
    "accept_q_zero": "application/vnd.oci.image.index.v1+json;q=0, "
                     "application/vnd.oci.image.manifest.v1+json",
    "accept_curl": "*/*",
    "accept_application_star": "application/*",
    "accept_empty": "",
    "accept_json": "application/json",
    # Content-Type values
    "content_type_params": "application/vnd.oci.image.index.v1+json; charset=utf-8",
    # manifest bodies
    "manifest_oci_index": '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
                          '"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                          f'"digest":"{ALPINE_AMD64}","size":528,'
                          '"platform":{"architecture":"amd64","os":"linux"}},'
                          '{"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                          f'"digest":"{LAYER}","size":528,'
                          '"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}',
    "manifest_docker_list": '{"schemaVersion":2,"mediaType":'
                            '"application/vnd.docker.distribution.manifest.list.v2+json","manifests":'
                            '[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
                            f'"size":528,"digest":"{ALPINE_AMD64}",'
                            '"platform":{"architecture":"amd64","os":"linux"}}]}',
    "manifest_docker_v2": '{\n   "schemaVersion": 2,\n   "mediaType": '
                          '"application/vnd.docker.distribution.manifest.v2+json",\n   "config": {\n'
                          '      "mediaType": "application/vnd.docker.container.image.v1+json",\n'
                          f'      "size": 1471,\n      "digest": "{CONFIG_DIGEST}"\n   }},\n   "layers": [\n'
                          '      {\n         "mediaType": '
                          '"application/vnd.docker.image.rootfs.diff.tar.gzip",\n'
                          f'         "size": 3408729,\n         "digest": "{LAYER}"\n      }}\n   ]\n}}',
    "manifest_oci_no_media_type": '{"schemaVersion":2,"config":{"mediaType":'
                                  '"application/vnd.oci.image.config.v1+json",'
                                  f'"digest":"{CONFIG_DIGEST}","size":1471}},"layers":[{{"mediaType":'
                                  '"application/vnd.oci.image.layer.v1.tar+gzip",'
                                  f'"digest":"{LAYER}","size":3408729}}]}}',
    "index_no_media_type": f'{{"schemaVersion":2,"manifests":[{{"digest":"{ALPINE_AMD64}"}}]}}',
    "manifest_schema1": '{"schemaVersion":1,"name":"library/alpine","tag":"latest",'
                        '"architecture":"amd64","fsLayers":[{"blobSum":"' + LAYER + '"}],'
                        '"history":[{"v1Compatibility":"{}"}],"signatures":[]}',
    "manifest_wrong_types": '{"mediaType":7,"config":[],"layers":{"digest":1},'
                            '"manifests":[null,{"digest":{}}]}',
    "manifest_truncated": '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
                          '"manifests":[{"digest":"sha256:',
    "json_array": "[1,2,3]",
    "json_deep": "[" * 64 + "]" * 64,
    "json_bad_utf8": '{"mediaType":"\xff\xfe"}',
    "json_escapes": '{"mediaType":"\\u0061pplication/vnd.oci.image.index.v1+json\\u0000"}',
    "json_huge_number": '{"config":{"digest":"x","size":1e999},"layers":[]}',
}

HTPASSWD = {
    # as written by `htpasswd -B` (bcrypt, cost 5), and the other formats it can write
    "bcrypt_one": "testuser:$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTHK\n",
    "bcrypt_two": "testuser:$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTHK\n"
                  "admin:$2y$05$eT6Ek9Lm03BnE75AsL4Vx.A4c3FcPXnjU8CyK32fGgu9AI8wj6H8e\n",
    "bcrypt_2b_no_newline": "bot:$2b$05$WXwe.waY9XVU6krtuViHH.JXeK4YVjkpAK8Da0HV12cYa8HFhakNW",
    "comments_blank_crlf": "# mirror users\r\n\r\n  # indented comment\r\n"
                           "testuser:$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTHK\r\n",
    "md5_apr1": "olduser:$apr1$oUCajcD4$vQoacRtipOw1ZRIy/.qbZ1\n",
    "sha1": "shauser:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n",
    "plain": "plainuser:pw\n",
    "no_colon": "justaname\n",
    "empty_user": ":$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTHK\n",
    "empty_hash": "nohash:\n",
    "trailing_space": "testuser:$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTHK \n",
    "leading_space": "  testuser:$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTHK\n",
    "short_bcrypt": "testuser:$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTH\n",
    "duplicate_user": "u:$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTHK\n"
                      "u:$2y$05$eT6Ek9Lm03BnE75AsL4Vx.A4c3FcPXnjU8CyK32fGgu9AI8wj6H8e\n",
    "nul_and_binary": "a\x00b:$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTHK\n\xff\xfe:\n",
    "mixed": "# generated\n"
             "testuser:$2y$05$y4sIB6LI.5.7DUXRNH.l3.Y5Ill0imgdAKVpjJwxRfRBniRqvHTHK\n"
             "olduser:$apr1$oUCajcD4$vQoacRtipOw1ZRIy/.qbZ1\n\n"
             "admin:$2y$05$eT6Ek9Lm03BnE75AsL4Vx.A4c3FcPXnjU8CyK32fGgu9AI8wj6H8e\n",
}

_GET = "GET /v2/library/alpine/manifests/3.19?ns=docker.io HTTP/1.1\r\nHost: m:5000\r\n"
REQUEST_PARSER = {
    # what dockerd, containerd and curl send
    "get": _GET + "User-Agent: containerd/1.6\r\nAccept: */*\r\n\r\n",
    "head_keepalive": "HEAD /v2/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "post_length": "POST /admin/prewarm HTTP/1.1\r\nHost: m\r\nContent-Length: 10\r\n\r\n[\"alpine\"]",
    "post_chunked": "POST /admin/prewarm HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\n[\"a\"]\r\n1;x=y\r\n \r\n0\r\nT: v\r\n\r\n",
    "pipelined": _GET + "\r\n" + _GET + "\r\n",
    "expect": "PUT /x HTTP/1.1\r\nHost: m\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
    # the smuggling classics
    "bare_lf_length": "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 38\n\r\n",
    "space_colon": "POST / HTTP/1.1\r\nHost: m\r\nContent-Length : 38\r\n\r\n",
    "cl_te": "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
    "te_identity": "POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
    "obs_fold": "GET / HTTP/1.1\r\nHost: m\r\nX: a\r\n b\r\n\r\n",
    "nul_length": "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 3\x008\r\n\r\n",
    "bad_chunks": "POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk_overflow": "POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "fffffffffffffffff\r\n",
}

# Authorization field values: "user:pass" is dXNlcjpwYXNz.
BASIC_CREDENTIALS = {
    "docker_login": "Basic dXNlcjpwYXNz",
    "lower_scheme": "basic dXNlcjpwYXNz",
    "many_spaces": "Basic    dXNlcjpwYXNz",
    "trailing_ows": "Basic dXNlcjpwYXNz \t",
    "padding_one": "Basic dXNlcjpwYXNzdw==",
    "padding_two": "Basic dXNlcjpwYXNzd28=",
    "utf8": "Basic w7w6w6Q=",
    "empty_password": "Basic dXNlcjo=",
    "colon_in_password": "Basic dTphOmI=",
    "no_colon": "Basic dXNlcg==",
    "nul_garbage": "Basic dXNlcjpwYXNzAGdhcmJhZ2U=",
    "newline": "Basic dXNlcjpwYXNzCg==",
    "percent_space": "Basic%20dXNlcjpwYXNz",
    "tab": "Basic\tdXNlcjpwYXNz",
    "no_space": "BasicdXNlcjpwYXNz",
    "bearer": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    "two_tokens": "Basic dXNlcjpwYXNz dXNlcjpwYXNz",
    "bad_padding": "Basic A===",
    "data_after_padding": "Basic dT=A",
    "not_base64": "Basic dX*6cA==",
}

CONFIG_FILE = {
    # the CNCF registry's config.yml as operators keep it, and hubcache's section
    "cncf": """version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h0m0s
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
  tls:
    certificate: /certs/domain.crt
    key: /certs/domain.key
    clientcas: [/certs/ca.pem]
auth:
  htpasswd:
    realm: basic-realm
    path: /auth/htpasswd
proxy:
  remoteurl: https://registry-1.docker.io
  ttl: 168h
""",
    "hubcache": """hubcache:
  cache_max_size: 50GiB
  hosted: [team/*, ci/*]
  upstreams:
    - name: ghcr.io
      url: https://ghcr.io
      username: u
      password: p
      allow: ["owner/*"]
      deny: [owner/secret]
""",
    "s3": "storage:\n  s3:\n    bucket: b\n    regionendpoint: http://127.0.0.1:7480\n",
    "flow": "{http: {addr: ':5000', headers: {A: [x, 'y']}}, log: {accesslog: {disabled: true}}}",
    "anchors": "x: &a {addr: ':1'}\nhttp: *a\n",
    "duplicate": "http:\n  addr: :1\n  addr: :2\n",
    "two_drivers": "storage:\n  filesystem: {}\n  s3: {}\n",
    "token_auth": "auth:\n  token:\n    realm: x\n",
    "deep": "a: " + "[" * 64,
    "tabs": "http:\n\taddr: :1\n",
    "multi_doc": "http: {addr: ':1'}\n---\nhttp: {addr: ':2'}\n",
    "binary": "\x00\xff\xfe: \x01",
    "complex_key": "? [a, b]\n: c\n",
    "empty": "",
}

CORPORA = {
    "basic_credentials": BASIC_CREDENTIALS,
    "reference": REFERENCE,
    "www_authenticate": WWW_AUTHENTICATE,
    "range": RANGE,
    "config": CONFIG,
    "config_file": CONFIG_FILE,
    "media_types": MEDIA_TYPES,
    "htpasswd": HTPASSWD,
    "request_parser": REQUEST_PARSER,
}


def main():
    for target, seeds in CORPORA.items():
        out = os.path.join(HERE, "corpus", target)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        for name, text in seeds.items():
            # latin-1 keeps the \xff-style escapes above as single raw bytes
            with open(os.path.join(out, name), "wb") as f:
                f.write(text.encode("latin-1"))
        print(f"fuzz/corpus/{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
