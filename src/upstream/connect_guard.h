#pragma once
// Which network addresses the upstream client may open connections to.
//
// A redirect (Docker Hub's 307 to its CDN) or a token realm names a host the
// upstream chose, not the operator. Followed blindly, it makes the mirror fetch
// from its own network and relay the answer: loopback services, cloud metadata
// (169.254.169.254), private hosts, or hubcache's own /stats. So every address
// libcurl is about to connect to is checked in its open-socket callback: after
// DNS (a name that resolves inward is caught like a literal) and before the
// socket exists (a refused address never sees a packet).
//
// Policy:
//   - hubcache's own listening address:port: never, for any target.
//   - the configured upstream (its origin): anywhere else; the classes of the
//     addresses it is reached at are remembered.
//   - any other target (redirects, token realms): public addresses; loopback,
//     private and link-local ones only when the upstream itself was reached in
//     that same class (a lab upstream on 127.0.0.1 may redirect to another
//     loopback port); reserved ones (0.0.0.0/8, multicast, ::) never.
//
// Thread-safe: every member may be called from any thread at any time.
// Ownership: a plain value holding only its own state (no handles, no
// borrowed pointers); UpstreamClient owns one and shares it with nobody.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubcache {

// An IPv4 or IPv6 address. IPv4-mapped IPv6 (::ffff:a.b.c.d) is stored as the
// IPv4 address it maps: both reach the same host.
struct IpAddress {
  bool v4 = true;
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4

  // A numeric literal ("10.0.0.1", "::1", "::ffff:127.0.0.1"), without brackets.
  static std::optional<IpAddress> Parse(std::string_view text);
  // An AF_INET or AF_INET6 socket address; nullopt for any other family.
  static std::optional<IpAddress> FromSockaddr(const sockaddr* address, size_t length);
  std::string str() const;
  bool operator==(const IpAddress& other) const = default;
};

enum class AddressClass : uint8_t {
  kPublic,
  kLoopback,   // 127/8, ::1
  kPrivate,    // 10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15, fc00::/7, fec0::/10
  kLinkLocal,  // 169.254/16, fe80::/10
  kReserved,   // 0/8, 224/4, 240/4, ::, ::/96, ff00::/8: never a redirect target
};

// NAT64 (64:ff9b::/96) addresses are classed by the IPv4 address they embed.
AddressClass ClassifyAddress(const IpAddress& address);
const char* AddressClassName(AddressClass c);

class ConnectGuard {
 public:
  enum class Target {
    kUpstream,  // the configured upstream's own origin
    kOther,     // anything the upstream pointed at: redirects, token realms
  };

  struct Verdict {
    bool allowed = true;
    std::string reason;  // why not, for logs and the error message
  };

  // Decides on one connection to address:port; for kUpstream it also
  // remembers the address's class as one the upstream lives in.
  Verdict Check(const IpAddress& address, uint16_t port, Target target);

  // hubcache's own listening port and the addresses it answers on (for a
  // wildcard bind, every local interface's). Loopback and reserved addresses on
  // this port always count as ours. Port 0 = not listening (no check).
  void SetOwnListener(std::vector<IpAddress> addresses, uint16_t port);

  // The addresses of this host's interfaces (getifaddrs), for a wildcard bind.
  static std::vector<IpAddress> LocalInterfaceAddresses();
  // The addresses a listener on `host` answers on: the host's literal or its
  // DNS answers; empty, "0.0.0.0" and "::" mean every local interface.
  static std::vector<IpAddress> ListenerAddresses(const std::string& host);

 private:
  static uint8_t Bit(AddressClass c) { return static_cast<uint8_t>(1u << static_cast<int>(c)); }

  std::atomic<uint8_t> upstream_classes_{0};  // bit per AddressClass

  std::mutex mutex_;
  std::vector<IpAddress> own_addresses_;  // guarded by mutex_
  uint16_t own_port_ = 0;                 // guarded by mutex_
};

}  // namespace hubcache
