#include "http/http_server.h"

#include <httplib.h>

#include "common/log.h"
#include "http/access_log.h"
#include "http/admin_handlers.h"
#include "http/client_auth.h"
#include "http/observability_handlers.h"
#include "http/registry_handlers.h"
#include "registry/errors.h"
#include "server/connection_server.h"
#include "server/exchange.h"
#include "server/tls_context.h"
#include "server/worker_pool.h"

namespace hubcache {

// Routes each parsed request: the per-client limit and credentials from its
// head, then the observability pages, the admin API or the registry API.
// Every answer it gives starts with the API version and the configured fields.
class HttpServer::Router final : public RequestRouter {
 public:
  using Fields = std::vector<std::pair<std::string, std::string>>;

  Router(Mirror& mirror, std::shared_ptr<ClientAuth> auth,
         std::shared_ptr<ObservabilityHandlers> observability, std::shared_ptr<AdminHandlers> admin,
         Fields response_headers)
      : auth_(std::move(auth)),
        observability_(std::move(observability)),
        admin_(std::move(admin)),
        registry_(std::make_unique<RegistryHandlers>(mirror)),
        response_headers_(std::move(response_headers)) {}

  Admission Admit(RequestContext& context, httplib::Request& req, HttpResponse& res) override {
    res.set_header("Docker-Distribution-API-Version", "registry/2.0");
    for (const auto& [name, value] : response_headers_) res.set_header(name, value);
    // The per-client slot this request holds, given back in Finish.
    if (!auth_->Enter(req.remote_addr, res)) return {Admission::Kind::kAnswered};
    context.client_slot_held = true;
    // A CORS preflight never carries credentials: it is answered from the head
    // alone, before any auth, and any body stays unread (the connection closes).
    if (req.method == "OPTIONS") {
      res.status = 200;
      res.set_header("Allow", AdminHandlers::IsAdminPath(req.path)
                                  ? "GET, POST, DELETE, OPTIONS"
                                  : "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
      return {Admission::Kind::kAnswered};
    }
    if (AdminHandlers::IsAdminPath(req.path)) {
      if (!admin_->Authorize(req, res)) return {Admission::Kind::kAnswered};
      size_t limit = admin_->BodyLimit(req);
      if (limit > 0) return {Admission::Kind::kReadBody, limit};
      return {Admission::Kind::kHandle};
    }
    std::string user;
    if (auth_->Protects(req.path) && !auth_->Authenticate(req, res, &user)) {
      return {Admission::Kind::kAnswered};
    }
    if (!auth_->MayWrite(req, user, res)) return {Admission::Kind::kAnswered};
    return {Admission::Kind::kHandle};
  }

  void Handle(httplib::Request& req, HttpResponse& res, RequestBody& body) override {
    if (AdminHandlers::IsAdminPath(req.path)) return admin_->Handle(req, res);
    if (!observability_->Handle(req, res)) registry_->Handle(req, res, body);
  }

  void Finish(const RequestContext& context, const httplib::Request& req,
              const HttpResponse& res) override {
    if (context.client_slot_held) auth_->Leave(req.remote_addr);
    log_->debug("{} {} {} {}", req.remote_addr, req.method, req.path, res.status);
    observability_->OnResponse(context, req, res);
  }

 private:
  std::shared_ptr<ClientAuth> auth_;
  std::shared_ptr<ObservabilityHandlers> observability_;
  std::shared_ptr<AdminHandlers> admin_;
  std::unique_ptr<RegistryHandlers> registry_;
  const Fields response_headers_;
  // Looked up once: Logger() takes two locks, which every request's Finish
  // would contend for.
  const std::shared_ptr<spdlog::logger> log_ = Logger("http");
};

HttpServer::HttpServer(Mirror& mirror, HttpOptions options)
    : mirror_(mirror),
      options_(std::move(options)),
      connections_(std::make_unique<ConnectionServer>(options_.limits, connection_counters_)) {
  observability_ = std::make_shared<ObservabilityHandlers>(mirror_, connection_counters_);
  admin_ = std::make_shared<AdminHandlers>(mirror_, options_.auth);
  router_ = std::make_unique<Router>(mirror_, options_.auth, observability_, admin_,
                                     options_.response_headers);
  connections_->SetRouter(router_.get());
}

HttpServer::~HttpServer() {
  Stop();
  connections_->Shutdown();  // its workers use the router and the TLS context: joined first
}

Status HttpServer::Bind() {
  if (auto s = observability_->Start(); !s) return s;
  if (options_.tls) {
    tls_.reset(SSL_CTX_new(TLS_server_method()));
    if (!tls_ || !options_.tls->Configure(*tls_)) {
      tls_.reset();
      return Fail(ErrorKind::kConfigInvalid, "cannot set up TLS for " + options_.addr);
    }
  }
  size_t colon = options_.addr.rfind(':');
  std::string host = options_.addr.substr(0, colon);
  int port = std::stoi(options_.addr.substr(colon + 1));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (auto s = listener_.Bind(host, port); !s) return s;
  port_ = listener_.port();
  return {};
}

void HttpServer::Run() {
  SSL_CTX* tls = tls_.get();
  ConnectionServer* connections = connections_.get();
  listener_.Run([connections, tls](int fd) {
    connections->workers().enqueue([connections, fd, tls] { connections->Serve(fd, tls); });
  });
  // Accepting stopped; the connections being served end (after their
  // current request when draining, at once after Stop()).
  connections_->Shutdown();
}

void HttpServer::AddStatsSection(std::string key, std::function<nlohmann::json()> provider) {
  observability_->AddStatsSection(std::move(key), std::move(provider));
}

void HttpServer::StopAccepting() {
  admin_->CancelPrewarmJobs();
  connections_->Drain();
  listener_.StopAccepting();
}

void HttpServer::Stop() {
  connections_->Drain();
  listener_.StopAccepting();
}

}  // namespace hubcache
