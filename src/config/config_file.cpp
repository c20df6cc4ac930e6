#include "config/config_file.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <iterator>
#include <map>

#include "config/http_headers.h"

namespace hubcache {
namespace {

// Storage parameters that are not a driver's section.
const std::set<std::string> kStorageParameters = {"delete", "maintenance", "cache", "redirect",
                                                  "tag"};
// The drivers hubcache stores with.
const std::set<std::string> kStorageDrivers = {"filesystem", "s3"};
// File keys whose setting has another name in hubcache (the same meaning).
const std::map<std::string, std::string> kAliases = {
    {"http.draintimeout", "HUBCACHE_SHUTDOWN_GRACE"},
};
// The fields of one hubcache.upstreams entry.
const std::set<std::string> kUpstreamFields = {
    "name", "url", "username", "password", "ca", "insecure", "tag_freshness", "allow", "deny"};
const std::set<std::string> kUpstreamListFields = {"allow", "deny"};

std::string Upper(std::string text) {
  for (char& c : text) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return text;
}

int LineOf(const YAML::Node& node) { return node.Mark().line + 1; }

class Reader {
 public:
  Reader(const std::string& path, const SettingNames& names) : path_(path), names_(names) {
    out_.path = path;
  }

  Result<ConfigFile> Read(const YAML::Node& root) {
    if (root.IsNull()) return out_;
    if (!root.IsMap()) {
      return tl::unexpected(Error(LineOf(root), "(top)", "expected a mapping of sections").error());
    }
    auto status = EachKey(
        root, "", [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) -> Status {
          if (key == "version") return {};
          if (key == "hubcache") return Hubcache(v, LineOf(k));
          if (key == "storage") return Storage(v, LineOf(k));
          if (key == "auth") return Auth(v, LineOf(k));
          return Section(key, "REGISTRY_" + Upper(key), k, v);
        });
    if (!status) return tl::unexpected(status.error());
    return std::move(out_);
  }

 private:
  using Visit = std::function<Status(const std::string&, const YAML::Node&, const YAML::Node&)>;

  Status Error(int line, const std::string& key, const std::string& message) const {
    return Fail(ErrorKind::kConfigInvalid,
                path_ + ":" + std::to_string(line) + ": " + key + ": " + message);
  }

  // Calls `visit` with each key of a mapping (its dotted path, the key node,
  // the value): keys are plain scalars, each once.
  Status EachKey(const YAML::Node& map, const std::string& parent, const Visit& visit) {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      // Copies: the iterator hands out a temporary pair, whose members a
      // reference would outlive (Nodes are handles, cheap to copy).
      const YAML::Node k = it->first;
      const YAML::Node v = it->second;
      if (!k.IsScalar() || k.Scalar().empty()) {
        return Error(LineOf(k), parent.empty() ? "(top)" : parent, "a key must be a plain name");
      }
      std::string key = parent.empty() ? k.Scalar() : parent + "." + k.Scalar();
      if (!seen.insert(k.Scalar()).second) return Error(LineOf(k), key, "duplicate key");
      if (auto s = visit(key, k, v); !s) return s;
    }
    return {};
  }

  bool HasSettingUnder(const std::string& env) const {
    auto it = names_.all.lower_bound(env + "_");
    return it != names_.all.end() && it->rfind(env + "_", 0) == 0;
  }

  // One value for the setting `env`: a scalar, or a sequence of scalars for a
  // list setting. A null (the key with nothing after it) leaves it unset.
  Status Take(const std::string& env, bool is_list, const std::string& key, int line,
              const YAML::Node& v, std::vector<FileValue>& into) {
    if (v.IsNull()) return {};
    if (v.IsMap()) return Error(line, key, "expected a value, not a mapping");
    std::string text;
    if (v.IsSequence()) {
      if (!is_list) return Error(line, key, "expected one value, not a list");
      for (const auto& item : v) {
        if (!item.IsScalar()) return Error(LineOf(item), key, "list elements must be values");
        if (item.Scalar().find(',') != std::string::npos) {
          return Error(LineOf(item), key, "a list element cannot contain ','");
        }
        text += (text.empty() ? "" : ",") + item.Scalar();
      }
    } else {
      text = v.Scalar();
    }
    into.push_back(FileValue{env, text, key, line});
    return {};
  }

  // A section whose keys map onto REGISTRY_<PATH> variables.
  Status Section(const std::string& key, const std::string& env, const YAML::Node& k,
                 const YAML::Node& v) {
    if (auto alias = kAliases.find(key); alias != kAliases.end()) {
      return Take(alias->second, false, key, LineOf(k), v, out_.values);
    }
    if (key == "http.headers") return Headers(v, LineOf(k));
    if (key == "log.accesslog.disabled") return AccessLogDisabled(v, LineOf(k));
    if (names_.all.count(env) != 0) {
      return Take(env, names_.lists.count(env) != 0, key, LineOf(k), v, out_.values);
    }
    if (v.IsMap() && (HasSettingUnder(env) || key == "log.accesslog")) {
      return EachKey(v, key,
                     [&](const std::string& child, const YAML::Node& ck, const YAML::Node& cv) {
                       return Section(child, env + "_" + Upper(ck.Scalar()), ck, cv);
                     });
    }
    out_.ignored.push_back(IgnoredKey{key, LineOf(k)});
    return {};
  }

  // A section one of whose keys is the choice (the storage driver, the auth
  // type): a supported name sets `env` to it and its settings are read under
  // <env>_<NAME>; a name that is neither supported nor one of `parameters`
  // (read the same way) is refused, as is a second choice.
  Status OneOf(const YAML::Node& v, int line, const std::string& section, const std::string& env,
               const std::set<std::string>& supported, const std::set<std::string>& parameters,
               const std::string& what) {
    if (v.IsNull()) return {};
    if (!v.IsMap()) return Error(line, section, "expected a mapping");
    std::string chosen;
    return EachKey(
        v, section,
        [&](const std::string& key, const YAML::Node& k, const YAML::Node& cv) -> Status {
          const std::string& name = k.Scalar();
          if (parameters.count(name) == 0) {
            if (supported.count(name) == 0) {
              std::string names;
              for (const auto& n : supported) names += (names.empty() ? "" : " or ") + n;
              return Error(LineOf(k), key,
                           what + " '" + name + "' is not supported by hubcache (" + names + ")");
            }
            if (!chosen.empty()) {
              return Error(LineOf(k), key,
                           "more than one " + what + " (" + chosen + " and " + name + ")");
            }
            chosen = name;
            out_.values.push_back(FileValue{env, name, key, LineOf(k)});
            if (cv.IsNull()) return {};
          }
          return Section(key, env + "_" + Upper(name), k, cv);
        });
  }

  Status Storage(const YAML::Node& v, int line) {
    return OneOf(v, line, "storage", "REGISTRY_STORAGE", kStorageDrivers, kStorageParameters,
                 "storage driver");
  }

  Status Auth(const YAML::Node& v, int line) {
    return OneOf(v, line, "auth", "REGISTRY_AUTH", {"htpasswd"}, {}, "auth type");
  }

  // http.headers: Name: [values] (or one value), as REGISTRY_HTTP_HEADERS_<Name>.
  Status Headers(const YAML::Node& v, int line) {
    if (v.IsNull()) return {};
    if (!v.IsMap()) return Error(line, "http.headers", "expected a mapping of header names");
    return EachKey(
        v, "http.headers",
        [&](const std::string& key, const YAML::Node& k, const YAML::Node& cv) -> Status {
          if (auto s = CheckHeaderName(k.Scalar()); !s) {
            return Error(LineOf(k), key, s.error().message);
          }
          std::vector<std::string> values;
          if (cv.IsScalar()) {
            values.push_back(cv.Scalar());
          } else if (cv.IsSequence()) {
            for (const auto& item : cv) {
              if (!item.IsScalar()) return Error(LineOf(item), key, "values must be text");
              values.push_back(item.Scalar());
            }
          } else {
            return Error(LineOf(k), key, "expected a list of values");
          }
          out_.values.push_back(FileValue{kHttpHeadersEnvPrefix + k.Scalar(),
                                          ShowHeaderValues(values), key, LineOf(k)});
          return {};
        });
  }

  // log.accesslog.disabled: true turns the access log off.
  Status AccessLogDisabled(const YAML::Node& v, int line) {
    const std::string key = "log.accesslog.disabled";
    if (v.IsNull()) return {};
    if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false")) {
      return Error(line, key, "expected true or false");
    }
    if (v.Scalar() == "true")
      out_.values.push_back(FileValue{"HUBCACHE_ACCESS_LOG", "off", key, line});
    return {};
  }

  Status Hubcache(const YAML::Node& v, int line) {
    if (v.IsNull()) return {};
    if (!v.IsMap()) return Error(line, "hubcache", "expected a mapping");
    return EachKey(
        v, "hubcache",
        [&](const std::string& key, const YAML::Node& k, const YAML::Node& cv) -> Status {
          if (k.Scalar() == "upstreams") return Upstreams(cv, LineOf(k));
          std::string env = "HUBCACHE_" + Upper(k.Scalar());
          if (names_.all.count(env) == 0) {
            out_.ignored.push_back(IgnoredKey{key, LineOf(k)});
            return {};
          }
          return Take(env, names_.lists.count(env) != 0, key, LineOf(k), cv, out_.values);
        });
  }

  Status Upstreams(const YAML::Node& v, int line) {
    if (v.IsNull()) return {};
    if (!v.IsSequence()) return Error(line, "hubcache.upstreams", "expected a list of upstreams");
    for (size_t i = 0; i < v.size(); ++i) {
      const YAML::Node& entry = v[i];
      std::string where = "hubcache.upstreams[" + std::to_string(i) + "]";
      if (!entry.IsMap()) return Error(LineOf(entry), where, "expected a mapping (name, url, ...)");
      FileUpstream upstream;
      upstream.line = LineOf(entry);
      auto s =
          EachKey(entry, where,
                  [&](const std::string& key, const YAML::Node& k, const YAML::Node& cv) -> Status {
                    const std::string& field = k.Scalar();
                    if (kUpstreamFields.count(field) == 0) {
                      out_.ignored.push_back(IgnoredKey{key, LineOf(k)});
                      return {};
                    }
                    return Take(field, kUpstreamListFields.count(field) != 0, key, LineOf(k), cv,
                                upstream.fields);
                  });
      if (!s) return s;
      out_.upstreams.push_back(std::move(upstream));
    }
    return {};
  }

  const std::string& path_;
  const SettingNames& names_;
  ConfigFile out_;
};

}  // namespace

Result<ConfigFile> ParseConfigText(const std::string& text, const std::string& path,
                                   const SettingNames& names) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Fail(ErrorKind::kConfigInvalid,
                path + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  try {
    return Reader(path, names).Read(root);
  } catch (const YAML::Exception& e) {
    return Fail(ErrorKind::kConfigInvalid,
                path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Result<ConfigFile> ReadConfigFile(const std::string& path, const SettingNames& names) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorKind::kConfigInvalid, path + ": cannot read the configuration file");
  std::string text;
  text.resize(kMaxConfigFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad())
    return Fail(ErrorKind::kConfigInvalid, path + ": cannot read the configuration file");
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigFileBytes) {
    return Fail(ErrorKind::kConfigInvalid, path + ": larger than 1 MiB: not a configuration file");
  }
  return ParseConfigText(text, path, names);
}

}  // namespace hubcache
