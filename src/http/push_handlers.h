#pragma once
// The write side of the registry API, for hosted repositories (OCI
// distribution spec v1.1: blob uploads, mounts, manifest PUT, DELETE) and the
// referrers API. Translates requests into calls on the Mirror's UploadService
// and HostedRegistry, and their results into registry responses. Writes to a
// mirrored name are refused with DENIED. Stateless apart from the Mirror it
// borrows; thread-safe.

#include <httplib.h>

#include "cache/mirror.h"
#include "registry/routes.h"
#include "server/exchange.h"
#include "server/http_response.h"

namespace hubcache {

class PushHandlers {
 public:
  explicit PushHandlers(Mirror& mirror) : mirror_(mirror) {}

  // Any method on /v2/<name>/blobs/uploads/[<id>].
  void Upload(const httplib::Request& req, HttpResponse& res, const Route& route,
              RequestBody& body);
  // PUT /v2/<name>/manifests/<reference>.
  void PutManifest(const httplib::Request& req, HttpResponse& res, const Route& route,
                   RequestBody& body);
  // DELETE of /v2/<name>/manifests/<reference> or /v2/<name>/blobs/<digest>.
  void Delete(HttpResponse& res, const Route& route);
  // GET /v2/<name>/referrers/<digest>.
  void Referrers(const httplib::Request& req, HttpResponse& res, const Route& route);

 private:
  // The repository when it may be written (hosted); else writes the refusal.
  std::optional<RepoName> WritableRepo(HttpResponse& res, const std::string& name);

  Mirror& mirror_;
};

}  // namespace hubcache
