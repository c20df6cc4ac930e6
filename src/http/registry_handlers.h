#pragma once
// The registry API over HTTP (the write side in push_handlers.h): translates requests into calls
// on the Mirror and its results into registry responses (headers, status codes,
// error JSON). Stateless apart from the Mirror it borrows; thread-safe.

#include <httplib.h>

#include "cache/mirror.h"
#include "http/push_handlers.h"
#include "server/exchange.h"
#include "server/http_response.h"

namespace hubcache {

class RegistryHandlers {
 public:
  explicit RegistryHandlers(Mirror& mirror) : mirror_(mirror), push_(mirror) {}

  // Every request goes through here (all methods, all paths).
  void Handle(const httplib::Request& req, HttpResponse& res, RequestBody& body);

 private:
  void Ping(HttpResponse& res);
  void Manifest(const httplib::Request& req, HttpResponse& res, const std::string& name,
                const std::string& reference);
  void Blob(const httplib::Request& req, HttpResponse& res, const std::string& name,
            const std::string& reference);
  void TagsList(const httplib::Request& req, HttpResponse& res, const std::string& name);
  void Catalog(const httplib::Request& req, HttpResponse& res);

  Mirror& mirror_;
  PushHandlers push_;
};

}  // namespace hubcache
