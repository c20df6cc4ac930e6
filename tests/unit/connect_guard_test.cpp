#include "upstream/connect_guard.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

namespace hubcache {
namespace {

IpAddress Ip(const std::string& text) {
  auto a = IpAddress::Parse(text);
  REQUIRE_MESSAGE(a.has_value(), text);
  return *a;
}

TEST_CASE("ClassifyAddress") {
  struct Case {
    std::string address;
    AddressClass want;
  };
  const std::vector<Case> cases = {
      // Loopback, in both families and the mapped form.
      {"127.0.0.1", AddressClass::kLoopback},
      {"127.255.255.254", AddressClass::kLoopback},
      {"::1", AddressClass::kLoopback},
      {"::ffff:127.0.0.1", AddressClass::kLoopback},
      {"::ffff:7f00:2", AddressClass::kLoopback},
      // Private ranges and their edges.
      {"10.0.0.1", AddressClass::kPrivate},
      {"10.255.255.255", AddressClass::kPrivate},
      {"172.16.0.1", AddressClass::kPrivate},
      {"172.31.255.255", AddressClass::kPrivate},
      {"172.15.255.255", AddressClass::kPublic},
      {"172.32.0.0", AddressClass::kPublic},
      {"192.168.1.1", AddressClass::kPrivate},
      {"192.169.0.1", AddressClass::kPublic},
      {"100.64.0.1", AddressClass::kPrivate},
      {"100.127.255.255", AddressClass::kPrivate},
      {"100.63.255.255", AddressClass::kPublic},
      {"100.128.0.0", AddressClass::kPublic},
      {"198.18.0.1", AddressClass::kPrivate},
      {"198.19.255.255", AddressClass::kPrivate},
      {"198.20.0.0", AddressClass::kPublic},
      {"fc00::1", AddressClass::kPrivate},
      {"fd12:3456::1", AddressClass::kPrivate},
      {"fec0::1", AddressClass::kPrivate},
      {"::ffff:10.1.2.3", AddressClass::kPrivate},
      {"::ffff:192.168.0.1", AddressClass::kPrivate},
      // Link-local: cloud metadata lives here.
      {"169.254.169.254", AddressClass::kLinkLocal},
      {"169.253.0.1", AddressClass::kPublic},
      {"fe80::1", AddressClass::kLinkLocal},
      {"febf::1", AddressClass::kLinkLocal},
      {"::ffff:169.254.169.254", AddressClass::kLinkLocal},
      // Reserved: 0.0.0.0 reaches this host on Linux.
      {"0.0.0.0", AddressClass::kReserved},
      {"0.1.2.3", AddressClass::kReserved},
      {"::", AddressClass::kReserved},
      {"::127.0.0.1", AddressClass::kReserved},  // IPv4-compatible (deprecated)
      {"224.0.0.1", AddressClass::kReserved},
      {"255.255.255.255", AddressClass::kReserved},
      {"ff02::1", AddressClass::kReserved},
      {"::ffff:0.0.0.0", AddressClass::kReserved},
      // NAT64 is classed by the IPv4 address it embeds.
      {"64:ff9b::7f00:1", AddressClass::kLoopback},
      {"64:ff9b::a9fe:a9fe", AddressClass::kLinkLocal},
      {"64:ff9b::808:808", AddressClass::kPublic},
      // Public.
      {"8.8.8.8", AddressClass::kPublic},
      {"104.16.0.1", AddressClass::kPublic},
      {"2606:4700::6810:1", AddressClass::kPublic},
      {"::ffff:8.8.8.8", AddressClass::kPublic},
  };
  for (const auto& c : cases) {
    CAPTURE(c.address);
    CHECK(AddressClassName(ClassifyAddress(Ip(c.address))) ==
          std::string(AddressClassName(c.want)));
  }
}

TEST_CASE("IpAddress: mapped IPv6 equals its IPv4 address; text and sockaddr agree") {
  CHECK(Ip("::ffff:127.0.0.1") == Ip("127.0.0.1"));
  CHECK(Ip("::ffff:127.0.0.1").str() == "127.0.0.1");
  CHECK_FALSE(Ip("::1") == Ip("127.0.0.1"));
  CHECK_FALSE(IpAddress::Parse("localhost").has_value());
  CHECK_FALSE(IpAddress::Parse("[::1]").has_value());
  CHECK_FALSE(IpAddress::Parse("").has_value());

  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  REQUIRE(inet_pton(AF_INET6, "::ffff:10.0.0.7", &in6.sin6_addr) == 1);
  auto from6 = IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof in6);
  REQUIRE(from6.has_value());
  CHECK(*from6 == Ip("10.0.0.7"));
  sockaddr_in in{};
  in.sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, "169.254.169.254", &in.sin_addr) == 1);
  auto from4 = IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof in);
  REQUIRE(from4.has_value());
  CHECK(*from4 == Ip("169.254.169.254"));
  // Too short for its family, or another family: not an IP address.
  CHECK_FALSE(IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof in).has_value());
  sockaddr unix_address{};
  unix_address.sa_family = AF_UNIX;
  CHECK_FALSE(IpAddress::FromSockaddr(&unix_address, sizeof unix_address).has_value());
}

using Target = ConnectGuard::Target;

TEST_CASE("ConnectGuard: other targets are allowed in the upstream's own classes only") {
  struct Case {
    std::string upstream;  // the address the upstream was reached at ("" = never reached)
    std::string target;
    bool allowed;
  };
  const std::vector<Case> cases = {
      // A public upstream (Docker Hub): public CDNs yes, nothing internal.
      {"104.16.0.1", "104.16.1.1", true},
      {"104.16.0.1", "2606:4700::1", true},
      {"104.16.0.1", "127.0.0.1", false},
      {"104.16.0.1", "::1", false},
      {"104.16.0.1", "::ffff:127.0.0.1", false},
      {"104.16.0.1", "10.0.0.1", false},
      {"104.16.0.1", "192.168.0.10", false},
      {"104.16.0.1", "172.20.0.1", false},
      {"104.16.0.1", "100.64.0.1", false},
      {"104.16.0.1", "169.254.169.254", false},
      {"104.16.0.1", "fe80::1", false},
      {"104.16.0.1", "fd00::1", false},
      {"104.16.0.1", "::ffff:169.254.169.254", false},
      {"104.16.0.1", "64:ff9b::7f00:1", false},
      {"104.16.0.1", "0.0.0.0", false},
      // A lab upstream on loopback may redirect to loopback, not elsewhere inside.
      {"127.0.0.1", "127.0.0.2", true},
      {"127.0.0.1", "::1", true},
      {"127.0.0.1", "10.0.0.1", false},
      {"127.0.0.1", "169.254.169.254", false},
      {"127.0.0.1", "0.0.0.0", false},
      {"127.0.0.1", "::", false},
      {"127.0.0.1", "8.8.8.8", true},
      // An upstream on a private network may use its private neighbours.
      {"10.1.2.3", "192.168.7.7", true},
      {"10.1.2.3", "fd00::5", true},
      {"10.1.2.3", "127.0.0.1", false},
      {"10.1.2.3", "169.254.169.254", false},
      // Before the upstream was ever reached, nothing internal.
      {"", "127.0.0.1", false},
      {"", "8.8.4.4", true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.upstream);
    CAPTURE(c.target);
    ConnectGuard guard;
    guard.SetOwnListener({Ip("192.0.2.1")}, 5000);
    if (!c.upstream.empty()) CHECK(guard.Check(Ip(c.upstream), 443, Target::kUpstream).allowed);
    auto verdict = guard.Check(Ip(c.target), 8080, Target::kOther);
    CHECK(verdict.allowed == c.allowed);
    CHECK(verdict.reason.empty() == c.allowed);
  }
}

TEST_CASE("ConnectGuard: hubcache's own address:port is refused for every target") {
  struct Case {
    std::vector<std::string> listener;
    std::string target;
    uint16_t port;
    bool allowed;
  };
  const std::vector<Case> cases = {
      {{"127.0.0.1"}, "127.0.0.1", 5000, false}, {{"127.0.0.1"}, "::ffff:127.0.0.1", 5000, false},
      {{"127.0.0.1"}, "::1", 5000, false},        // loopback on our port: ours
      {{"127.0.0.1"}, "0.0.0.0", 5000, false},    // reaches this host
      {{"127.0.0.1"}, "127.0.0.1", 5001, true},   // another port
      {{"192.0.2.1"}, "192.0.2.1", 5000, false},  // a specific, public-looking bind
      {{"192.0.2.1"}, "192.0.2.2", 5000, true},  {{"10.9.8.7", "fd00::7"}, "fd00::7", 5000, false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.target);
    CAPTURE(c.port);
    ConnectGuard guard;
    std::vector<IpAddress> listener;
    for (const auto& a : c.listener) listener.push_back(Ip(a));
    guard.SetOwnListener(listener, 5000);
    // Even the configured upstream (and any class it lives in) may not be us.
    for (auto target : {Target::kUpstream, Target::kOther}) {
      ConnectGuard::Verdict verdict = guard.Check(Ip(c.target), c.port, target);
      if (target == Target::kUpstream || !c.allowed) CHECK(verdict.allowed == c.allowed);
    }
  }
}

TEST_CASE("ConnectGuard: a wildcard listener counts every local interface as ours") {
  ConnectGuard guard;
  auto local = ConnectGuard::ListenerAddresses("");
  REQUIRE_FALSE(local.empty());  // at least loopback
  guard.SetOwnListener(local, 5000);
  for (const auto& a : local) {
    CAPTURE(a.str());
    CHECK_FALSE(guard.Check(a, 5000, Target::kUpstream).allowed);
  }
  CHECK(ConnectGuard::ListenerAddresses("127.0.0.1") == std::vector<IpAddress>{Ip("127.0.0.1")});
  CHECK(ConnectGuard::ListenerAddresses("::1") == std::vector<IpAddress>{Ip("::1")});
}

TEST_CASE("ConnectGuard: no listener set means no self check") {
  ConnectGuard guard;
  CHECK(guard.Check(Ip("127.0.0.1"), 5000, Target::kUpstream).allowed);
  CHECK(guard.Check(Ip("127.0.0.1"), 5000, Target::kOther).allowed);  // upstream class loopback
}

}  // namespace
}  // namespace hubcache
