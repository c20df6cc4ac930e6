#pragma once
// Response header fields an operator adds to every answer, set the CNCF
// registry's way: REGISTRY_HTTP_HEADERS_<Name>=<value>, where <value> is a YAML
// flow list ('["https://ui.example"]', '[HEAD, GET, OPTIONS]', quoted or bare
// elements: one field per element) or a plain string (one field). The typical
// use is CORS for a registry UI served from another origin.
//
// Everything here is validated once, at load: a name that is not an HTTP token,
// a framing field (Content-Length, Transfer-Encoding, Connection, Keep-Alive:
// the response writer owns those), a value with a control byte, or a list that
// is not well-formed is refused with one line naming the variable. Pure
// functions over values; no state, safe from any thread.

#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace hubcache {

inline constexpr const char* kHttpHeadersEnvPrefix = "REGISTRY_HTTP_HEADERS_";

// One configured field name and the values it is sent with, each as its own
// field line, in the order given.
struct ConfiguredHeader {
  std::string name;
  std::vector<std::string> values;
};

// The values of one setting: a YAML flow list of scalars (bare, 'single' with
// '' for a quote, or "double" with \" \\ \t \n-style escapes) or a plain
// string. Empty elements, an empty list, nested lists or maps, anything after
// the closing ']', and an unterminated list or quote are errors. Bare elements
// are trimmed; `*` is taken as text (in YAML it would be an alias), since
// `Access-Control-Allow-Origin: *` is what an operator means by it. The error
// says what is wrong, without the variable's name.
[[nodiscard]] Result<std::vector<std::string>> ParseHeaderValues(const std::string& text);

// An HTTP field name (RFC 9110 token) that is not a framing field.
[[nodiscard]] Status CheckHeaderName(const std::string& name);

// Every REGISTRY_HTTP_HEADERS_<Name> in `env`, in the map's (byte) order of
// variable names. Errors name the variable.
[[nodiscard]] Result<std::vector<ConfiguredHeader>> LoadConfiguredHeaders(
    const std::map<std::string, std::string>& env);

// The values as a flow list of double-quoted elements, which ParseHeaderValues
// takes back unchanged: ["https://ui.example"].
std::string ShowHeaderValues(const std::vector<std::string>& values);

}  // namespace hubcache
