#include "http/http_server.h"

#include <sys/socket.h>

#include <httplib.h>

#include "common/log.h"
#include "http/access_log.h"
#include "http/admin_handlers.h"
#include "http/client_auth.h"
#include "http/connection_server.h"
#include "http/exchange.h"
#include "http/observability_handlers.h"
#include "http/registry_handlers.h"
#include "http/tls_context.h"
#include "http/worker_pool.h"
#include "registry/errors.h"

namespace hubcache {

// A worker thread serves one request at a time, so the per-client slot a
// request holds is kept per thread: taken in Admit, given back in Finish.
thread_local bool slot_held = false;
thread_local std::string slot_client;

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

  Admission Admit(httplib::Request& req, httplib::Response& res) override {
    BeginRequest();
    Release();  // left over if a previous request on this thread was not finished
    res.set_header("Docker-Distribution-API-Version", "registry/2.0");
    for (const auto& [name, value] : response_headers_) res.set_header(name, value);
    if (!auth_->Enter(req.remote_addr, res)) return {Admission::Kind::kAnswered};
    slot_held = true;
    slot_client = req.remote_addr;
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

  void Handle(httplib::Request& req, httplib::Response& res, RequestBody& body) override {
    if (AdminHandlers::IsAdminPath(req.path)) return admin_->Handle(req, res);
    if (!observability_->Handle(req, res)) registry_->Handle(req, res, body);
  }

  void Finish(const httplib::Request& req, const httplib::Response& res) override {
    Release();
    Logger("http")->debug("{} {} {} {}", req.remote_addr, req.method, req.path, res.status);
    observability_->OnResponse(req, res);
  }

 private:
  void Release() {
    if (!slot_held) return;
    slot_held = false;
    auth_->Leave(slot_client);
  }

  std::shared_ptr<ClientAuth> auth_;
  std::shared_ptr<ObservabilityHandlers> observability_;
  std::shared_ptr<AdminHandlers> admin_;
  std::unique_ptr<RegistryHandlers> registry_;
  const Fields response_headers_;
};

// httplib's Server or SSLServer for what it still does here: the listening
// socket, the accept loop and the TLS context. Its per-connection loop
// (process_and_close_socket, a private virtual: overriding it is allowed,
// calling it is not) is replaced by the ConnectionServer's, so httplib never
// parses a request. The subclass also reaches the listening socket: httplib's
// compiled-in backlog of 5 is too small for a burst of clients, and stopping
// to accept must not cut transfers in flight (unlike stop()).
template <typename Base>
class ServerWithSocket : public Base {
 public:
  template <typename... Args>
  explicit ServerWithSocket(ConnectionServer& connections, Args&&... args)
      : Base(std::forward<Args>(args)...), connections_(connections) {}
  void RaiseBacklog() { ::listen(this->svr_sock_, SOMAXCONN); }
  void StopAccepting() { ::shutdown(this->svr_sock_, SHUT_RDWR); }

 private:
  bool process_and_close_socket(socket_t sock) override {
    SSL_CTX* tls = nullptr;
    if constexpr (std::is_same_v<Base, httplib::SSLServer>) tls = this->ssl_context();
    connections_.Serve(sock, tls);
    return true;
  }

  ConnectionServer& connections_;
};

HttpServer::HttpServer(Mirror& mirror, HttpOptions options)
    : mirror_(mirror),
      options_(std::move(options)),
      connections_(std::make_unique<ConnectionServer>(options_.limits, mirror_.stats())) {
  if (options_.tls) {
    auto tls = options_.tls;
    auto server = std::make_unique<ServerWithSocket<httplib::SSLServer>>(
        *connections_, [tls](SSL_CTX& ctx) { return tls->Configure(ctx); });
    raise_backlog_ = [s = server.get()] { s->RaiseBacklog(); };
    stop_accepting_ = [s = server.get()] { s->StopAccepting(); };
    server_ = std::move(server);
  } else {
    auto server = std::make_unique<ServerWithSocket<httplib::Server>>(*connections_);
    raise_backlog_ = [s = server.get()] { s->RaiseBacklog(); };
    stop_accepting_ = [s = server.get()] { s->StopAccepting(); };
    server_ = std::move(server);
  }
  observability_ = std::make_shared<ObservabilityHandlers>(mirror_);
  admin_ = std::make_shared<AdminHandlers>(mirror_, options_.auth);
  router_ = std::make_unique<Router>(mirror_, options_.auth, observability_, admin_,
                                     options_.response_headers);
  connections_->SetRouter(router_.get());
  // httplib queues each accepted connection on the ConnectionServer's workers,
  // which also serve connections resumed from parking; httplib's shutdown of
  // its queue leaves them to ConnectionServer::Shutdown (see Run()).
  struct SharedWorkers : httplib::TaskQueue {
    explicit SharedWorkers(WorkerPool& pool) : pool(pool) {}
    void enqueue(std::function<void()> fn) override { pool.enqueue(std::move(fn)); }
    void shutdown() override {}
    WorkerPool& pool;
  };
  server_->new_task_queue = [connections = connections_.get()] {
    return new SharedWorkers(connections->workers());
  };
}

HttpServer::~HttpServer() {
  Stop();
  connections_->Shutdown();  // its workers call into server_: joined before it goes
}

Status HttpServer::Bind() {
  if (auto s = observability_->Start(); !s) return s;
  size_t colon = options_.addr.rfind(':');
  std::string host = options_.addr.substr(0, colon);
  int port = std::stoi(options_.addr.substr(colon + 1));
  if (host.empty()) host = "0.0.0.0";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
    if (port_ < 0) return Fail(ErrorKind::kConfigInvalid, "cannot listen on " + options_.addr);
  } else {
    if (!server_->bind_to_port(host, port)) {
      return Fail(ErrorKind::kConfigInvalid,
                  "cannot listen on " + options_.addr + " (address in use or not available)");
    }
    port_ = port;
  }
  raise_backlog_();
  return {};
}

void HttpServer::Run() {
  server_->listen_after_bind();
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
  stop_accepting_();
}

void HttpServer::Stop() {
  connections_->Drain();
  if (server_) server_->stop();
}

}  // namespace hubcache
