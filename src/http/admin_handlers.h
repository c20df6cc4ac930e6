#pragma once
// The admin API under /admin/: off (404) unless an admin token is configured,
// and then only for requests bearing it (401 otherwise). Pull users never get
// in. Requests here go through httplib's routing (not the pre-routing fast
// path), because some carry a JSON body.
//
//   GET    /admin/images                 cached images (as `hubcache ls --json`)
//   DELETE /admin/images/<repo>:<tag>    remove an image and blobs nothing else uses
//   DELETE /admin/images/<repo>@<digest>
//   DELETE /admin/blobs/<digest>         remove one blob
//   POST   /admin/prewarm                start a pre-warm job: ["alpine:3.19", ...]
//   GET    /admin/prewarm/<id>           its progress (both: prewarm/job_manager.h)

#include <httplib.h>

#include "cache/mirror.h"
#include "http/client_auth.h"
#include "prewarm/job_manager.h"

namespace hubcache {

class AdminHandlers {
 public:
  // `auth` (may be null) lets htpasswd users named in HUBCACHE_ADMIN_USERS in.
  AdminHandlers(Mirror& mirror, std::shared_ptr<ClientAuth> auth)
      : mirror_(mirror), auth_(std::move(auth)) {}

  // Registers the /admin/ routes on the server.
  void Register(httplib::Server& server);

  bool enabled() const {
    return !mirror_.config().admin_token.empty() || !mirror_.config().admin_users.empty();
  }

  // Cancels pre-warm jobs in flight: their transfers would hold a drain.
  void CancelPrewarmJobs() { prewarm_jobs_.Shutdown(); }

 private:
  // False (with the response written) unless the request may use the API.
  bool Authorize(const httplib::Request& req, httplib::Response& res);
  void ListImages(httplib::Response& res);
  void DeleteImage(const std::string& image, httplib::Response& res);
  void DeleteBlob(const std::string& digest, httplib::Response& res);

  Mirror& mirror_;
  std::shared_ptr<ClientAuth> auth_;
  PrewarmJobs prewarm_jobs_{PrewarmJobOptions{}};
};

}  // namespace hubcache
