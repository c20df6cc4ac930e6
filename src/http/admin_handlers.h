#pragma once
// The admin API under /admin/: off (404) unless an admin token is configured,
// and then only for requests bearing it (401 otherwise). Pull users never get
// in. The credentials are checked from the request's head, before any body is
// read; only POST /admin/prewarm reads one (a JSON list, up to 1 MiB).
// Thread-safe: worker threads call it for concurrent requests; its own state is
// the pre-warm jobs (PrewarmJobs, thread-safe). Borrows the Mirror, shares the
// client-auth object with the HTTP front.
//
//   GET    /admin/images                 cached images (as `hubcache ls --json`)
//   DELETE /admin/images/<repo>:<tag>    remove an image and blobs nothing else uses
//   DELETE /admin/images/<repo>@<digest>
//                                        in a hosted repository: delete the tag (or
//                                        the manifest and its tags), even when
//                                        REGISTRY_STORAGE_DELETE_ENABLED is off
//   DELETE /admin/blobs/<digest>         remove one blob
//   POST   /admin/prewarm                start a pre-warm job: ["alpine:3.19", ...]
//   GET    /admin/prewarm/<id>           its progress (both: prewarm/job_manager.h)

#include <httplib.h>

#include "cache/mirror.h"
#include "http/client_auth.h"
#include "prewarm/job_manager.h"
#include "server/http_response.h"

namespace hubcache {

class AdminHandlers {
 public:
  // `auth` (may be null) lets htpasswd users named in HUBCACHE_ADMIN_USERS in.
  AdminHandlers(Mirror& mirror, std::shared_ptr<ClientAuth> auth)
      : mirror_(mirror), auth_(std::move(auth)) {}

  // Whether `path` belongs to the admin API.
  static bool IsAdminPath(const std::string& path) { return path.rfind("/admin/", 0) == 0; }

  // False (with the response written) unless the request may use the API.
  bool Authorize(const httplib::Request& req, HttpResponse& res);
  // How many body bytes the request's route reads (0: none).
  size_t BodyLimit(const httplib::Request& req) const;
  // Answers an authorized request.
  void Handle(const httplib::Request& req, HttpResponse& res);

  bool enabled() const {
    return !mirror_.config().admin_token.empty() || !mirror_.config().admin_users.empty();
  }

  // Cancels pre-warm jobs in flight: their transfers would hold a drain.
  void CancelPrewarmJobs() { prewarm_jobs_.Shutdown(); }

 private:
  void ListImages(HttpResponse& res);
  void DeleteImage(const std::string& image, HttpResponse& res);
  void DeleteHosted(const std::pair<RepoName, Reference>& image, HttpResponse& res);
  void DeleteBlob(const std::string& digest, HttpResponse& res);

  Mirror& mirror_;
  std::shared_ptr<ClientAuth> auth_;
  PrewarmJobs prewarm_jobs_{PrewarmJobOptions{}};
};

}  // namespace hubcache
