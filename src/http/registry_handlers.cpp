#include "http/registry_handlers.h"

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "http/request_repo.h"
#include "http/responses.h"
#include "registry/hubcache_headers.h"
#include "registry/media_types.h"
#include "registry/pagination.h"
#include "registry/range.h"
#include "registry/routes.h"

namespace hubcache {
namespace {

// All values of a repeatable header, comma-joined.
std::string JoinedHeader(const httplib::Request& req, const char* name) {
  std::string joined;
  size_t count = req.get_header_value_count(name);
  for (size_t i = 0; i < count; ++i) {
    if (!joined.empty()) joined += ", ";
    joined += req.get_header_value(name, i);
  }
  return joined;
}

// True when If-None-Match names this digest (quoted or not) or is "*".
bool MatchesEtag(const std::string& if_none_match, const std::string& digest) {
  if (if_none_match.empty()) return false;
  size_t pos = 0;
  while (pos <= if_none_match.size()) {
    size_t comma = if_none_match.find(',', pos);
    std::string item =
        if_none_match.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.rfind("W/", 0) == 0) item = item.substr(2);
    if (item.size() >= 2 && item.front() == '"' && item.back() == '"')
      item = item.substr(1, item.size() - 2);
    if (item == "*" || item == digest) return true;
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return false;
}

const char* SourceName(ManifestSource source) {
  switch (source) {
    case ManifestSource::kCache:
    case ManifestSource::kBucket:
      return "hit";
    case ManifestSource::kUpstream:
      return "miss";
    case ManifestSource::kStale:
      return "stale";
    case ManifestSource::kHosted:
      return "hosted";
  }
  return "hit";
}

const char* BlobSourceName(BlobSource source) {
  switch (source) {
    case BlobSource::kHit:
      return "hit";
    case BlobSource::kMiss:
      return "miss";
    case BlobSource::kPassThrough:
      return "pass-through";
    case BlobSource::kHosted:
      return "hosted";
    case BlobSource::kRedirect:  // the cache's bucket has it; the client fetches it there
    case BlobSource::kBucket:    // the cache's bucket has it; streamed from there
      return "hit";
  }
  return "hit";
}

void SetBlobHeaders(HttpResponse& res, const Digest& digest) {
  res.set_header("Docker-Content-Digest", digest.str());
  res.set_header("ETag", "\"" + digest.str() + "\"");
  res.set_header("Accept-Ranges", "bytes");
  res.set_header("Cache-Control", "max-age=31536000");
}

// 206 + Content-Range, 416, or the full 200 body, for an entity of `size` bytes.
// Returns false when the response is complete (416).
bool ApplyRange(const httplib::Request& req, HttpResponse& res, uint64_t size, ByteRange* range) {
  *range = {0, size == 0 ? 0 : size - 1};
  RangeRequest parsed = ParseRange(req.get_header_value("Range"), size);
  if (parsed.outcome == RangeOutcome::kUnsatisfiable) {
    res.set_header("Content-Range", "bytes */" + std::to_string(size));
    WriteError(res, Error{ErrorKind::kRangeInvalid, "requested range not satisfiable"});
    return false;
  }
  if (parsed.outcome == RangeOutcome::kSatisfiable) {
    *range = parsed.range;
    res.status = 206;
    res.set_header("Content-Range", "bytes " + std::to_string(range->first) + "-" +
                                        std::to_string(range->last) + "/" + std::to_string(size));
  } else {
    res.status = 200;
  }
  return true;
}

void WritePage(const httplib::Request& req, HttpResponse& res, const std::string& path,
               const std::vector<std::string>& all, const char* key, const std::string* name) {
  auto page_request =
      ParsePageRequest(req.get_param_value("n"), req.has_param("n"), req.get_param_value("last"));
  if (!page_request) return WriteError(res, page_request.error());
  Page page = Paginate(all, *page_request);
  nlohmann::json doc;
  if (name != nullptr) doc["name"] = *name;
  doc[key] = page.items;
  if (page.has_more)
    res.set_header("Link", NextPageLink(path, *page_request->n, page.items.back()));
  res.status = 200;
  res.set_content(doc.dump(), "application/json");
}

}  // namespace

void RegistryHandlers::Handle(const httplib::Request& req, HttpResponse& res, RequestBody& body) {
  Route route = ParseRoute(req.path);
  if (route.kind == RouteKind::kOther) {
    return WriteError(res, Error{ErrorKind::kNameUnknown, "not found: " + req.path});
  }
  // containerd names the registry an image belongs to in ?ns= ("docker.io" for
  // Docker Hub): a mirrored registry's repositories are keyed "<registry>/<name>"
  // here, the form path-prefix clients send. Any other registry is unknown,
  // never answered with Docker Hub's repository of that name.
  if (!route.name.empty()) {
    auto qualified = RequestRepoName(req, route, mirror_.sources());
    if (!qualified) return WriteError(res, qualified.error());
    route.name = std::move(*qualified);
    // A name of a registry not mirrored here (or outside its allow list) is
    // refused before anything is looked up: not even a cached blob is served
    // under it.
    if (auto repo = RepoName::Parse(route.name); repo) {
      RepoRoute where = mirror_.sources().Route(*repo);
      if (where.source == RepoSource::kRefused) {
        return WriteError(res, Error{ErrorKind::kNameUnknown, where.reason});
      }
    }
  }
  const bool read = req.method == "GET" || req.method == "HEAD";
  auto refuse = [&](const char* allow) {
    res.set_header("Allow", allow);
    WriteError(res,
               Error{ErrorKind::kUnsupported, req.method + " is not supported on " + req.path});
  };
  switch (route.kind) {
    case RouteKind::kPing:
      return read ? Ping(res) : refuse("GET, HEAD");
    case RouteKind::kCatalog:
      return read ? Catalog(req, res) : refuse("GET, HEAD");
    case RouteKind::kManifest:
      if (read) return Manifest(req, res, route.name, route.reference);
      if (req.method == "PUT") return push_.PutManifest(req, res, route, body);
      if (req.method == "DELETE") return push_.Delete(res, route);
      return refuse("GET, HEAD, PUT, DELETE");
    case RouteKind::kBlob:
      if (read) return Blob(req, res, route.name, route.reference);
      if (req.method == "DELETE") return push_.Delete(res, route);
      return refuse("GET, HEAD, DELETE");
    case RouteKind::kTagsList:
      return read ? TagsList(req, res, route.name) : refuse("GET, HEAD");
    case RouteKind::kReferrers:
      return read ? push_.Referrers(req, res, route) : refuse("GET, HEAD");
    case RouteKind::kBlobUpload:
      return push_.Upload(req, res, route, body);
    case RouteKind::kUnknownV2:
    case RouteKind::kOther:
      break;
  }
  // Something under /v2/ that is no endpoint: blame the name if it is invalid.
  WriteError(res, Error{ErrorKind::kNameInvalid, "invalid repository path: " + req.path});
}

void RegistryHandlers::Ping(HttpResponse& res) {
  res.status = 200;
  res.set_content("{}", "application/json");
}

void RegistryHandlers::Manifest(const httplib::Request& req, HttpResponse& res,
                                const std::string& name, const std::string& reference) {
  auto repo = RepoName::Parse(name);
  if (!repo) return WriteError(res, repo.error());
  auto ref = ParseReference(reference);
  if (!ref) return WriteError(res, ref.error());
  AcceptSet accept = AcceptSet::FromHeader(JoinedHeader(req, "Accept"));

  const bool hosted = mirror_.sources().IsHosted(*repo);
  Result<ManifestResult> result = [&]() -> Result<ManifestResult> {
    if (!hosted) return mirror_.manifests().Get(*repo, *ref, accept);
    auto pushed = mirror_.hosted().GetManifest(*repo, *ref);
    if (!pushed) return tl::unexpected(pushed.error());
    // As the CNCF registry: a pushed manifest the client cannot take is not
    // there for it (a Docker-v2-only client never gets an OCI index).
    if (!accept.Accepts(pushed->media_type)) {
      return Fail(ErrorKind::kManifestUnknown, "the manifest is a " + pushed->media_type +
                                                   ", which the request's Accept does not allow");
    }
    return ManifestResult{std::move(*pushed), ManifestSource::kHosted};
  }();
  if (!result) return WriteError(res, result.error());
  const auto& manifest = result->manifest;
  // A GET of an image manifest the cache lacked: its blobs come next.
  if (!hosted && req.method == "GET" && req.get_header_value(kPrefetchHeader) != "off" &&
      mirror_.prefetcher().ShouldPrefetch(*result)) {
    mirror_.prefetcher().Enqueue(*repo, manifest);
  }
  const std::string digest = manifest.digest.str();
  res.set_header("Docker-Content-Digest", digest);
  res.set_header("ETag", "\"" + digest + "\"");
  res.set_header(kCacheHeader, hosted ? "hosted" : SourceName(result->source));
  if (std::holds_alternative<Digest>(*ref)) res.set_header("Cache-Control", "max-age=31536000");
  if (MatchesEtag(req.get_header_value("If-None-Match"), digest)) {
    res.status = 304;
    return;
  }
  res.status = 200;
  res.set_content(*manifest.bytes, manifest.media_type);
}

void RegistryHandlers::Blob(const httplib::Request& req, HttpResponse& res, const std::string& name,
                            const std::string& reference) {
  auto repo = RepoName::Parse(name);
  if (!repo) return WriteError(res, repo.error());
  auto digest = Digest::Parse(reference);
  if (!digest) return WriteError(res, digest.error());
  BlobService& blobs = mirror_.blobs();
  auto read = req.method == "HEAD" ? blobs.Stat(*repo, *digest) : blobs.Open(*repo, *digest);
  if (!read) return WriteError(res, read.error());
  SetBlobHeaders(res, *digest);
  res.set_header(kCacheHeader, BlobSourceName(read->source));
  if (req.method == "HEAD") {
    res.status = 200;
    return AnnounceLength(res, *read->size, "application/octet-stream");
  }
  if (read->source == BlobSource::kRedirect) {
    res.status = 307;
    res.set_header("Location", read->location);
    return;
  }
  if (!read->size) {
    res.status = 200;
    return ServeBlobChunked(res, blobs, std::make_shared<BlobRead>(std::move(*read)));
  }
  ByteRange range;
  if (!ApplyRange(req, res, *read->size, &range)) return;
  if (*read->size == 0) return res.set_content("", "application/octet-stream");
  if (read->file.valid()) {
    return ServeFile(res, std::move(read->file), range.first, range.length(), std::move(read->pin));
  }
  ServeBlobStream(res, blobs, std::make_shared<BlobRead>(std::move(*read)), range.first,
                  range.length());
}

void RegistryHandlers::TagsList(const httplib::Request& req, HttpResponse& res,
                                const std::string& name) {
  auto repo = RepoName::Parse(name);
  if (!repo) return WriteError(res, repo.error());
  auto tags = mirror_.sources().IsHosted(*repo) ? mirror_.hosted().Tags(*repo)
                                                : mirror_.tag_lists().Tags(*repo);
  if (!tags) return WriteError(res, tags.error());
  WritePage(req, res, TagsListPath(*repo), *tags, "tags", &repo->str());
}

void RegistryHandlers::Catalog(const httplib::Request& req, HttpResponse& res) {
  auto repos = mirror_.Catalog();
  if (!repos) return WriteError(res, repos.error());
  WritePage(req, res, "/v2/_catalog", *repos, "repositories", nullptr);
}

}  // namespace hubcache
