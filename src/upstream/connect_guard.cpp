#include "upstream/connect_guard.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>

#include <algorithm>
#include <cstring>

namespace hubcache {
namespace {

IpAddress V4(const uint8_t* four) {
  IpAddress a;
  a.v4 = true;
  std::copy(four, four + 4, a.bytes.begin());
  return a;
}

// ::ffff:a.b.c.d becomes a.b.c.d.
IpAddress FromV6Bytes(const uint8_t* sixteen) {
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(sixteen, kMappedPrefix, 12) == 0) return V4(sixteen + 12);
  IpAddress a;
  a.v4 = false;
  std::copy(sixteen, sixteen + 16, a.bytes.begin());
  return a;
}

AddressClass ClassifyV4(const uint8_t* b) {
  if (b[0] == 0) return AddressClass::kReserved;  // "this network"; 0.0.0.0 reaches this host
  if (b[0] == 127) return AddressClass::kLoopback;
  if (b[0] == 10) return AddressClass::kPrivate;
  if (b[0] == 172 && (b[1] & 0xf0) == 16) return AddressClass::kPrivate;
  if (b[0] == 192 && b[1] == 168) return AddressClass::kPrivate;
  if (b[0] == 100 && (b[1] & 0xc0) == 64) return AddressClass::kPrivate;  // carrier-grade NAT
  if (b[0] == 198 && (b[1] & 0xfe) == 18) return AddressClass::kPrivate;  // benchmarking
  if (b[0] == 169 && b[1] == 254) return AddressClass::kLinkLocal;
  if (b[0] >= 224) return AddressClass::kReserved;  // multicast, 240/4, broadcast
  return AddressClass::kPublic;
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  std::string s(text);
  uint8_t buffer[16];
  if (inet_pton(AF_INET, s.c_str(), buffer) == 1) return V4(buffer);
  if (inet_pton(AF_INET6, s.c_str(), buffer) == 1) return FromV6Bytes(buffer);
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::FromSockaddr(const sockaddr* address, size_t length) {
  if (address == nullptr) return std::nullopt;
  if (address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    sockaddr_in in;
    std::memcpy(&in, address, sizeof in);
    return V4(reinterpret_cast<const uint8_t*>(&in.sin_addr));
  }
  if (address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6;
    std::memcpy(&in6, address, sizeof in6);
    return FromV6Bytes(reinterpret_cast<const uint8_t*>(&in6.sin6_addr));
  }
  return std::nullopt;
}

std::string IpAddress::str() const {
  char text[INET6_ADDRSTRLEN] = {0};
  inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), text, sizeof text);
  return text;
}

AddressClass ClassifyAddress(const IpAddress& address) {
  const uint8_t* b = address.bytes.data();
  if (address.v4) return ClassifyV4(b);
  bool first_96_zero = std::all_of(b, b + 12, [](uint8_t x) { return x == 0; });
  if (first_96_zero) {
    if (b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] == 1) return AddressClass::kLoopback;
    return AddressClass::kReserved;  // :: and the deprecated IPv4-compatible ::a.b.c.d
  }
  static constexpr uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b, kNat64, 12) == 0) return ClassifyV4(b + 12);
  if (b[0] == 0xff) return AddressClass::kReserved;  // multicast
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressClass::kLinkLocal;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return AddressClass::kPrivate;  // site-local
  if ((b[0] & 0xfe) == 0xfc) return AddressClass::kPrivate;                  // unique local
  return AddressClass::kPublic;
}

const char* AddressClassName(AddressClass c) {
  switch (c) {
    case AddressClass::kPublic:
      return "public";
    case AddressClass::kLoopback:
      return "loopback";
    case AddressClass::kPrivate:
      return "private";
    case AddressClass::kLinkLocal:
      return "link-local";
    case AddressClass::kReserved:
      return "reserved";
  }
  return "reserved";
}

ConnectGuard::Verdict ConnectGuard::Check(const IpAddress& address, uint16_t port, Target target) {
  const AddressClass cls = ClassifyAddress(address);
  {
    std::lock_guard lock(mutex_);
    bool ours =
        cls == AddressClass::kLoopback || cls == AddressClass::kReserved ||
        std::find(own_addresses_.begin(), own_addresses_.end(), address) != own_addresses_.end();
    if (own_port_ != 0 && port == own_port_ && ours) {
      return {false,
              address.str() + ":" + std::to_string(port) + " is hubcache's own listening address"};
    }
  }
  if (target == Target::kUpstream) {
    upstream_classes_.fetch_or(Bit(cls));
    return {};
  }
  if (cls == AddressClass::kPublic) return {};
  if (cls != AddressClass::kReserved && (upstream_classes_.load() & Bit(cls)) != 0) return {};
  return {false, address.str() + " is a " + AddressClassName(cls) +
                     " address and the upstream is not in that range"};
}

void ConnectGuard::SetOwnListener(std::vector<IpAddress> addresses, uint16_t port) {
  std::lock_guard lock(mutex_);
  own_addresses_ = std::move(addresses);
  own_port_ = port;
}

std::vector<IpAddress> ConnectGuard::LocalInterfaceAddresses() {
  std::vector<IpAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    size_t length = i->ifa_addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (auto a = IpAddress::FromSockaddr(i->ifa_addr, length)) out.push_back(*a);
  }
  freeifaddrs(list);
  return out;
}

std::vector<IpAddress> ConnectGuard::ListenerAddresses(const std::string& host) {
  if (host.empty() || host == "0.0.0.0" || host == "::") return LocalInterfaceAddresses();
  if (auto literal = IpAddress::Parse(host)) return {*literal};
  std::vector<IpAddress> out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return out;
  for (addrinfo* i = found; i != nullptr; i = i->ai_next) {
    if (auto a = IpAddress::FromSockaddr(i->ai_addr, i->ai_addrlen)) out.push_back(*a);
  }
  freeaddrinfo(found);
  return out;
}

}  // namespace hubcache
