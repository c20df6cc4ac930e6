#include "http/request_repo.h"

namespace hubcache {

Result<std::string> RequestRepoName(const httplib::Request& req, const Route& route,
                                    const RepoSources& sources) {
  const size_t ns_count = req.get_param_value_count("ns");
  if (ns_count == 0) return route.name;
  const std::string ns = req.get_param_value("ns", 0);
  for (size_t i = 1; i < ns_count; ++i) {
    if (req.get_param_value("ns", i) != ns) {
      return Fail(ErrorKind::kNameUnknown, "ns= names two registries");
    }
  }
  return sources.QualifyForNs(ns, route.name);
}

}  // namespace hubcache
