#pragma once
// Parsing of a WWW-Authenticate header (RFC 9110 section 11.6.1) into the
// challenges a registry sends: Docker Hub sends
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."
// and some registries send Basic realm="...". Untrusted input: never throws.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubcache {

struct AuthChallenge {
  std::string scheme;                         // lower-cased: "bearer", "basic"
  std::map<std::string, std::string> params;  // names lower-cased, values unquoted

  std::string Param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
};

// All challenges in the header, in order. Malformed trailing parts are dropped.
std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header);

// The challenge to answer: a bearer one with a realm if any (as Docker's client
// prefers), else a basic one.
std::optional<AuthChallenge> PickChallenge(std::string_view header);

}  // namespace hubcache
