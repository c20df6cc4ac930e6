#include "http/admin_handlers.h"

#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <string_view>
#include <variant>

#include "cache/image_listing.h"
#include "cache/image_remover.h"
#include "common/log.h"
#include "http/responses.h"
#include "prewarm/keep_warm.h"

namespace hubcache {
namespace {

nlohmann::json ReportJson(const RemovalReport& report) {
  return {{"manifests_removed", report.manifests},
          {"blobs_removed", report.blobs},
          {"bytes_freed", report.bytes}};
}

// The largest request body the admin API reads (a pre-warm list).
constexpr size_t kMaxAdminBodyBytes = 1024 * 1024;

}  // namespace

size_t AdminHandlers::BodyLimit(const httplib::Request& req) const {
  return req.method == "POST" && req.path == "/admin/prewarm" ? kMaxAdminBodyBytes : 0;
}

void AdminHandlers::Handle(const httplib::Request& req, HttpResponse& res) {
  const std::string& path = req.path;
  const std::string& method = req.method;
  auto tail = [&path](std::string_view prefix) -> std::optional<std::string> {
    if (path.size() <= prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return {};
    return path.substr(prefix.size());
  };
  if (method == "GET" && path == "/admin/images") return ListImages(res);
  if (method == "DELETE") {
    if (auto image = tail("/admin/images/")) return DeleteImage(*image, res);
    if (auto digest = tail("/admin/blobs/")) return DeleteBlob(*digest, res);
  }
  auto reply = [&res](const ApiReply& r) {
    res.status = r.status;
    res.set_content(r.body, "application/json");
  };
  if (method == "POST" && path == "/admin/prewarm") {
    // Pre-warm jobs warm through this server, reached where the request came in.
    bool auth = auth_ && auth_->enabled();
    auto self = SelfSession(mirror_.config(), req.local_port, auth ? ClientAuth::kInternalUser : "",
                            auth ? auth_->internal_password() : "");
    if (!self) return WriteError(res, self.error());
    return reply(prewarm_jobs_.HandlePost(req.body, *self));
  }
  if (method == "GET") {
    if (auto id = tail("/admin/prewarm/");
        id && id->find_first_not_of("0123456789abcdef") == std::string::npos) {
      return reply(prewarm_jobs_.HandleGet(*id));
    }
  }
  WriteError(res, Error{ErrorKind::kNameUnknown, "no admin endpoint " + method + " " + path});
}

bool AdminHandlers::Authorize(const httplib::Request& req, HttpResponse& res) {
  const std::string& token = mirror_.config().admin_token;
  if (!enabled()) {
    WriteError(res,
               Error{ErrorKind::kNameUnknown,
                     "the admin API is off (set HUBCACHE_ADMIN_TOKEN or HUBCACHE_ADMIN_USERS)"});
    return false;
  }
  if (ClientAuth::RepeatedAuthorization(req)) {
    ++mirror_.stats().admin_auth_failures;
    ClientAuth::RefuseRepeatedAuthorization(res);
    return false;
  }
  const std::string header = req.get_header_value("Authorization");
  const std::string expected = "Bearer " + token;
  // Constant time, so the token cannot be guessed byte by byte.
  bool ok = !token.empty() && header.size() == expected.size() &&
            CRYPTO_memcmp(header.data(), expected.data(), expected.size()) == 0;
  // Or an admin user: a pull user's valid password is not enough.
  if (!ok && auth_) ok = auth_->IsAdmin(req);
  if (!ok) {
    ++mirror_.stats().admin_auth_failures;
    Logger("http")->warn("admin request refused client={} path={}", req.remote_addr, req.path);
    res.set_header("WWW-Authenticate", token.empty() ? "Basic realm=\"hubcache-admin\""
                                                     : "Bearer realm=\"hubcache-admin\"");
    WriteError(res, Error{ErrorKind::kUnauthorized, "admin token required"});
    return false;
  }
  return true;
}

void AdminHandlers::ListImages(HttpResponse& res) {
  auto images = mirror_.ListImages();
  if (!images) return WriteError(res, images.error());
  nlohmann::json doc = {{"images", ToJson(*images)},
                        {"cache_bytes", mirror_.usage().bytes()},
                        {"cache_max_bytes", mirror_.config().cache_max_size_bytes}};
  res.status = 200;
  res.set_content(doc.dump(), "application/json");
}

void AdminHandlers::DeleteImage(const std::string& image, HttpResponse& res) {
  auto parsed = ParseImageArgument(image);
  if (!parsed) return WriteError(res, parsed.error());
  if (mirror_.sources().IsHosted(parsed->first)) return DeleteHosted(*parsed, res);
  auto report = mirror_.RemoveImage(parsed->first, parsed->second);
  if (!report) return WriteError(res, report.error());
  Logger("http")->info("admin removed image={} manifests={} blobs={} bytes={}", image,
                       report->manifests, report->blobs, report->bytes);
  res.status = 200;
  res.set_content(ReportJson(*report).dump(), "application/json");
}

// Pushed content is the only copy: the tag (or the manifest and its tags) goes
// from the repository, as a registry DELETE would (admins may, whatever
// REGISTRY_STORAGE_DELETE_ENABLED says); blobs nothing references any more
// are freed by the next `hubcache gc`.
void AdminHandlers::DeleteHosted(const std::pair<RepoName, Reference>& image, HttpResponse& res) {
  const auto& [repo, reference] = image;
  if (auto s = mirror_.hosted().DeleteManifest(repo, reference); !s) {
    return WriteError(res, s.error());
  }
  const bool by_tag = std::holds_alternative<Tag>(reference);
  const std::string what = by_tag ? repo.str() + ":" + std::get<Tag>(reference).str()
                                  : repo.str() + "@" + std::get<Digest>(reference).str();
  Logger("http")->info("admin deleted hosted image={}", what);
  nlohmann::json doc = {{"hosted", true},
                        {"deleted", what},
                        {"manifests_removed", by_tag ? 0 : 1},
                        {"blobs_removed", 0},
                        {"bytes_freed", 0}};
  res.status = 200;
  res.set_content(doc.dump(), "application/json");
}

void AdminHandlers::DeleteBlob(const std::string& digest_text, HttpResponse& res) {
  auto digest = Digest::Parse(digest_text);
  if (!digest) return WriteError(res, digest.error());
  auto report = mirror_.RemoveBlob(*digest);
  if (!report) return WriteError(res, report.error());
  Logger("http")->info("admin removed blob={} bytes={}", digest->str(), report->bytes);
  res.status = 200;
  res.set_content(ReportJson(*report).dump(), "application/json");
}

}  // namespace hubcache
