#!/bin/sh
# Installs every Debian 12 package hubcache needs to build, run and test.
# Idempotent: packages already installed are skipped, apt is not touched then.
# Distro services (docker-registry, nginx, containerd) must not start system-wide:
# tests start their own instances on loopback, so policy-rc.d blocks them here.
set -eu

# doctest-dev is a build package: `meson setup` configures the unit tests too.
BUILD_PKGS="build-essential pkg-config meson ninja-build libcurl4-openssl-dev libcpp-httplib-dev
libssl-dev nlohmann-json3-dev libsqlite3-dev libspdlog-dev libfmt-dev libexpected-dev doctest-dev
libyaml-cpp-dev"
TEST_PKGS="docker-registry skopeo python3 python3-jwt python3-cryptography curl jq
openssl clang-format prometheus chromium nodejs"
# htpasswd -B makes the client-auth users of test_security and test_prewarm.
TEST_PKGS="$TEST_PKGS apache2-utils"
# The browser test's npm: Debian's, unless a Node.js that bundles its own is installed.
command -v npm >/dev/null 2>&1 || TEST_PKGS="$TEST_PKGS npm"
# The deploy test: a real containerd as the client, and the compose file parsed as YAML;
# the cluster's balancers (deploy/cluster/), checked and run on loopback.
TEST_PKGS="$TEST_PKGS containerd python3-yaml haproxy nginx"
# The hosted-repository test: podman pushes (vfs storage, as root, no daemon).
TEST_PKGS="$TEST_PKGS podman"
# The S3 test (test_s3): a one-node Ceph (monitor, memstore OSD) with its S3 gateway radosgw,
# started on loopback by tests/integration/ceph_rgw.py; it checks SigV4 signatures as AWS does.
TEST_PKGS="$TEST_PKGS radosgw ceph-mon ceph-osd ceph-common"
# scripts/fuzz.sh: clang with libFuzzer and its sanitizer runtimes; llvm-symbolizer
# (package llvm) for readable stack traces in its reports.
TEST_PKGS="$TEST_PKGS clang libclang-rt-14-dev llvm"

case "${1:-all}" in
  build) PKGS="$BUILD_PKGS" ;;
  all) PKGS="$BUILD_PKGS $TEST_PKGS" ;;
  *) echo "usage: $0 [build|all]" >&2; exit 2 ;;
esac

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi

echo "install-deps: installing:$missing"
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
$SUDO apt-get update -q
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
[ "$created_policy" = 0 ] || $SUDO rm -f /usr/sbin/policy-rc.d
