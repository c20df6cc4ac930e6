#include "http/push_handlers.h"

#include "common/strings.h"
#include "http/responses.h"
#include "registry/routes.h"

namespace hubcache {
namespace {

std::string UploadLocation(const RepoName& repo, const std::string& id) {
  return UploadPath(repo, id);
}

// The Range header of an upload holding `offset` bytes: "0-<last byte>", and
// "0-0" while empty, as the CNCF registry answers (clients parse that form).
std::string UploadRange(uint64_t offset) {
  return "0-" + std::to_string(offset == 0 ? 0 : offset - 1);
}

void AnswerUpload(HttpResponse& res, const RepoName& repo, const UploadStatus& status, int code) {
  res.status = code;
  res.set_header("Location", UploadLocation(repo, status.id));
  res.set_header("Docker-Upload-UUID", status.id);
  res.set_header("Range", UploadRange(status.offset));
  res.set_content("", "text/plain");
}

void AnswerBlobCreated(HttpResponse& res, const RepoName& repo, const Digest& digest) {
  res.status = 201;
  res.set_header("Location", BlobPath(repo, digest));
  res.set_header("Docker-Content-Digest", digest.str());
  res.set_content("", "text/plain");
}

// Parses Content-Range of a chunk: "<first>-<last>", optionally with the
// "bytes " unit and a "/<total>" or "/*" suffix. Nullopt when malformed.
std::optional<std::pair<uint64_t, uint64_t>> ParseChunkRange(std::string_view text) {
  if (text.substr(0, 6) == "bytes ") text.remove_prefix(6);
  if (size_t slash = text.find('/'); slash != std::string_view::npos) text = text.substr(0, slash);
  size_t dash = text.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto first = ParseUint(text.substr(0, dash));
  auto last = ParseUint(text.substr(dash + 1));
  if (!first || !last || *last < *first) return std::nullopt;
  return std::pair{*first, *last};
}

// Reads a whole small body (a manifest): at most `max` bytes.
Result<std::string> ReadSmallBody(RequestBody& body, size_t max) {
  std::string out;
  if (auto declared = body.declared_length(); declared && *declared > max) {
    return Fail(ErrorKind::kManifestTooLarge,
                "manifest larger than " + std::to_string(max) + " bytes");
  }
  char buffer[64 * 1024];
  while (true) {
    auto n = body.Read(buffer, sizeof(buffer));
    if (!n) return Fail(ErrorKind::kManifestInvalid, n.error().message);
    if (*n == 0) break;
    if (out.size() + *n > max) {
      return Fail(ErrorKind::kManifestTooLarge,
                  "manifest larger than " + std::to_string(max) + " bytes");
    }
    out.append(buffer, *n);
  }
  return out;
}

}  // namespace

std::optional<RepoName> PushHandlers::WritableRepo(HttpResponse& res, const std::string& name) {
  auto repo = RepoName::Parse(name);
  if (!repo) {
    WriteError(res, repo.error());
    return std::nullopt;
  }
  if (!mirror_.sources().IsHosted(*repo)) {
    mirror_.stats().push_refused.fetch_add(1, std::memory_order_relaxed);
    WriteError(res, Error{ErrorKind::kDenied,
                          "repository " + repo->str() +
                              " is a Docker Hub mirror here; pushes go to hosted repositories "
                              "(HUBCACHE_HOSTED / --hosted)"});
    return std::nullopt;
  }
  return *repo;
}

void PushHandlers::Upload(const httplib::Request& req, HttpResponse& res, const Route& route,
                          RequestBody& body) {
  auto repo = WritableRepo(res, route.name);
  if (!repo) return;
  UploadService& uploads = mirror_.uploads();
  const std::string& id = route.reference;

  if (id.empty()) {
    if (req.method != "POST") {
      res.set_header("Allow", "POST");
      return WriteError(res, Error{ErrorKind::kUnsupported, req.method + " needs an upload id"});
    }
    if (req.has_param("mount")) {
      auto digest = Digest::Parse(req.get_param_value("mount"));
      if (!digest) return WriteError(res, digest.error());
      std::optional<RepoName> from;
      bool from_mirror = false;
      if (req.has_param("from")) {
        auto parsed = RepoName::Parse(req.get_param_value("from"));
        if (!parsed) return WriteError(res, parsed.error());
        from = *parsed;
        from_mirror = !mirror_.sources().IsHosted(*from);
      }
      auto mounted = uploads.Mount(*repo, *digest, from, from_mirror);
      if (!mounted) return WriteError(res, mounted.error());
      if (*mounted) return AnswerBlobCreated(res, *repo, (*mounted)->digest);
      // Not there to mount: an ordinary upload starts (the spec's 202).
    } else if (req.has_param("digest")) {
      auto digest = Digest::Parse(req.get_param_value("digest"));
      if (!digest) return WriteError(res, digest.error());
      auto stored = uploads.PutWhole(*repo, *digest, body);
      if (!stored) return WriteError(res, stored.error());
      return AnswerBlobCreated(res, *repo, stored->digest);
    }
    auto started = uploads.Start(*repo);
    if (!started) return WriteError(res, started.error());
    if (body.present()) {
      // A body without ?digest= is the upload's first chunk.
      auto appended = uploads.Append(*repo, started->id, uint64_t{0}, body);
      if (!appended) return WriteError(res, appended.error());
      started = appended;
    }
    return AnswerUpload(res, *repo, *started, 202);
  }

  if (req.method == "GET" || req.method == "HEAD") {
    auto status = uploads.Query(*repo, id);
    if (!status) return WriteError(res, status.error());
    return AnswerUpload(res, *repo, *status, 204);
  }
  if (req.method == "PATCH") {
    std::optional<uint64_t> start;
    if (req.has_header("Content-Range")) {
      auto range = ParseChunkRange(req.get_header_value("Content-Range"));
      if (!range) {
        return WriteError(res, Error{ErrorKind::kUploadOutOfOrder, "malformed Content-Range"});
      }
      auto declared = body.declared_length();
      if (declared && *declared != range->second - range->first + 1) {
        return WriteError(
            res, Error{ErrorKind::kUploadOutOfOrder, "Content-Range and Content-Length disagree"});
      }
      start = range->first;
    }
    auto status = uploads.Append(*repo, id, start, body);
    if (!status) return WriteError(res, status.error());
    return AnswerUpload(res, *repo, *status, 202);
  }
  if (req.method == "PUT") {
    if (!req.has_param("digest")) {
      return WriteError(res, Error{ErrorKind::kDigestInvalid, "PUT needs ?digest="});
    }
    auto digest = Digest::Parse(req.get_param_value("digest"));
    if (!digest) return WriteError(res, digest.error());
    if (req.has_header("Content-Range")) {
      // The last chunk may come with the PUT: it must start where the upload is.
      auto range = ParseChunkRange(req.get_header_value("Content-Range"));
      auto status = uploads.Query(*repo, id);
      if (!status) return WriteError(res, status.error());
      if (!range || range->first != status->offset) {
        return WriteError(res, Error{ErrorKind::kUploadOutOfOrder,
                                     "Content-Range does not start at the upload's offset"});
      }
    }
    auto stored = uploads.Finish(*repo, id, *digest, body);
    if (!stored) return WriteError(res, stored.error());
    return AnswerBlobCreated(res, *repo, stored->digest);
  }
  if (req.method == "DELETE") {
    if (auto s = uploads.Cancel(*repo, id); !s) return WriteError(res, s.error());
    res.status = 204;
    return;
  }
  res.set_header("Allow", "GET, HEAD, PATCH, PUT, DELETE");
  WriteError(res, Error{ErrorKind::kUnsupported, req.method + " is not an upload method"});
}

void PushHandlers::PutManifest(const httplib::Request& req, HttpResponse& res, const Route& route,
                               RequestBody& body) {
  auto repo = WritableRepo(res, route.name);
  if (!repo) return;
  auto reference = ParseWrittenReference(route.reference);
  if (!reference) return WriteError(res, reference.error());
  auto bytes = ReadSmallBody(body, mirror_.hosted().max_manifest_bytes());
  if (!bytes) return WriteError(res, bytes.error());
  auto pushed = mirror_.hosted().PutManifest(
      *repo, *reference, req.get_header_value("Content-Type"), std::move(*bytes));
  if (!pushed) return WriteError(res, pushed.error());
  res.status = 201;
  res.set_header("Location", ManifestPath(*repo, pushed->digest.str()));
  res.set_header("Docker-Content-Digest", pushed->digest.str());
  if (!pushed->subject.empty()) res.set_header("OCI-Subject", pushed->subject);
  res.set_content("", "text/plain");
}

void PushHandlers::Delete(HttpResponse& res, const Route& route) {
  auto repo = WritableRepo(res, route.name);
  if (!repo) return;
  if (!mirror_.config().delete_enabled) {
    return WriteError(res, Error{ErrorKind::kUnsupported,
                                 "deletes are disabled (REGISTRY_STORAGE_DELETE_ENABLED)"});
  }
  Status done;
  if (route.kind == RouteKind::kManifest) {
    auto reference = ParseReference(route.reference);
    if (!reference) return WriteError(res, reference.error());
    done = mirror_.hosted().DeleteManifest(*repo, *reference);
  } else {
    auto digest = Digest::Parse(route.reference);
    if (!digest) return WriteError(res, digest.error());
    done = mirror_.hosted().DeleteBlob(*repo, *digest);
  }
  if (!done) return WriteError(res, done.error());
  res.status = 202;
  res.set_content("", "text/plain");
}

void PushHandlers::Referrers(const httplib::Request& req, HttpResponse& res, const Route& route) {
  auto repo = RepoName::Parse(route.name);
  if (!repo) return WriteError(res, repo.error());
  auto digest = Digest::Parse(route.reference);
  if (!digest) return WriteError(res, digest.error());
  const std::string artifact_type = req.get_param_value("artifactType");
  std::string index;
  if (mirror_.sources().IsHosted(*repo)) {
    auto found = mirror_.hosted().Referrers(*repo, *digest, artifact_type);
    if (!found) return WriteError(res, found.error());
    index = std::move(*found);
  } else {
    // The mirror keeps no referrers: an empty list, as the spec allows.
    index = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
            R"("manifests":[]})";
  }
  if (!artifact_type.empty()) res.set_header("OCI-Filters-Applied", "artifactType");
  res.status = 200;
  res.set_content(index, "application/vnd.oci.image.index.v1+json");
}

}  // namespace hubcache
