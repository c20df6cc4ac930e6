#include "http/http_server.h"

#include <sys/socket.h>

#include <httplib.h>

#include "common/log.h"
#include "http/access_log.h"
#include "http/admin_handlers.h"
#include "http/client_auth.h"
#include "http/connection_server.h"
#include "http/observability_handlers.h"
#include "http/registry_handlers.h"
#include "http/request_framing.h"
#include "http/tls_context.h"
#include "http/worker_pool.h"
#include "registry/errors.h"

namespace hubcache {

// A worker thread serves one request at a time, so the per-client slot a
// request holds is kept per thread: taken in pre-routing, given back by the
// logger after the response (or at the thread's next request, should httplib
// not call the logger after a failed write).
thread_local bool slot_held = false;
thread_local std::string slot_client;

void HoldClientSlot(const std::string& client) {
  slot_held = true;
  slot_client = client;
}

void ReleaseClientSlot(ClientAuth& auth) {
  if (!slot_held) return;
  slot_held = false;
  auth.Leave(slot_client);
}

// httplib's Server or SSLServer with its per-connection loop replaced by ours
// (process_and_close_socket is a private virtual: overriding it is allowed,
// calling it is not; process_request, which parses and answers one request, is
// protected). The subclass also reaches the listening socket: httplib's
// compiled-in backlog of 5 is too small for a burst of clients, and stopping
// to accept must not cut transfers in flight (unlike stop()).
template <typename Base>
class ServerWithSocket : public Base {
 public:
  template <typename... Args>
  explicit ServerWithSocket(ConnectionServer& connections, Args&&... args)
      : Base(std::forward<Args>(args)...), connections_(connections) {
    connections_.SetProcessor(
        [this](httplib::Stream& stream, bool close_connection, bool& connection_closed, SSL* ssl) {
          return this->process_request(stream, close_connection, connection_closed,
                                       [ssl](httplib::Request& req) { req.ssl = ssl; });
        });
  }
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
  auto handlers = std::make_shared<RegistryHandlers>(mirror_);
  observability_ = std::make_shared<ObservabilityHandlers>(mirror_);
  // Everything is answered before httplib's own routing, which would first read
  // (and for a bodyless POST, reject) request bodies the mirror never wants.
  admin_ = std::make_shared<AdminHandlers>(mirror_, options_.auth);
  admin_->Register(*server_);
  server_->set_pre_routing_handler(
      [handlers, obs = observability_, auth = options_.auth, &stats = mirror_.stats()](
          const httplib::Request& req, httplib::Response& res) {
        BeginRequest();
        ReleaseClientSlot(*auth);  // left over if httplib skipped the logger
        const bool admin = req.path.rfind("/admin/", 0) == 0;
        if (ConnectionStream* connection = CurrentConnection()) {
          connection->MarkDispatched();
          // Only the admin API's POSTs have bodies, read by httplib's routing.
          switch (CheckFraming(req, admin && req.method == "POST")) {
            case Framing::kOk:
              break;
            case Framing::kBodyUnread:
              connection->CloseAfterResponse();
              break;
            case Framing::kInvalid:
              connection->Reject(400, "invalid Content-Length or Transfer-Encoding",
                                 stats.rejected_malformed_request);
              return httplib::Server::HandlerResponse::Handled;
          }
        }
        if (!auth->Enter(req.remote_addr, res)) return httplib::Server::HandlerResponse::Handled;
        HoldClientSlot(req.remote_addr);
        // The admin API takes request bodies: it goes through httplib's routing.
        if (admin) return httplib::Server::HandlerResponse::Unhandled;
        std::string user;
        if (auth->Protects(req.path) && !auth->Authenticate(req, res, &user)) {
          return httplib::Server::HandlerResponse::Handled;
        }
        if (!obs->Handle(req, res)) handlers->Handle(req, res);
        return httplib::Server::HandlerResponse::Handled;
      });
  server_->set_default_headers({{"Docker-Distribution-API-Version", "registry/2.0"}});
  // A worker per connection, and some beyond the limit so that connections
  // over it are refused at once rather than queued.
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
  // Timeouts and keep-alive are the ConnectionServer's (options_.limits);
  // httplib only announces them in its Keep-Alive header.
  server_->set_keep_alive_timeout(std::max<time_t>(
      1,
      std::chrono::duration_cast<std::chrono::seconds>(options_.limits.keepalive_timeout).count()));
  server_->set_keep_alive_max_count(
      static_cast<size_t>(options_.limits.max_requests_per_connection));
  server_->set_tcp_nodelay(true);
  server_->set_payload_max_length(1024 * 1024);
  // A request httplib could not parse never reached the handlers: it is
  // refused with a registry error and the connection closed, rather than the
  // rest of its bytes being read as further requests. Other errors httplib
  // answers itself (an admin route it does not know) get the registry error
  // form too; responses that already have a body keep it.
  server_->set_error_handler(httplib::Server::HandlerWithResponse(
      [&stats = mirror_.stats()](const httplib::Request& req, httplib::Response& res) {
        if (ConnectionStream* connection = CurrentConnection();
            connection && !connection->dispatched()) {
          connection->Reject(res.status == 414 ? 414 : 400, "malformed HTTP request",
                             stats.rejected_malformed_request);
          return httplib::Server::HandlerResponse::Handled;
        }
        if (!res.body.empty() || req.method == "HEAD" || res.has_header("Content-Type")) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        const char* message = res.status == 414   ? "the request URI is too long"
                              : res.status == 413 ? "the request body is too large"
                              : res.status == 400 ? "malformed HTTP request"
                              : res.status == 404 ? "not found"
                                                  : "the request failed";
        res.set_content(ErrorJson("UNKNOWN", message), "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          Logger("http")->error("handler exception: {}", e.what());
        } catch (...) {
          Logger("http")->error("handler exception of unknown type");
        }
        res.status = 500;
        res.set_content(R"({"errors":[{"code":"UNKNOWN","message":"internal error"}]})",
                        "application/json");
      });
  // Called once the response is written: counts and access-logs the request.
  server_->set_logger([obs = observability_, auth = options_.auth](const httplib::Request& req,
                                                                   const httplib::Response& res) {
    ReleaseClientSlot(*auth);
    Logger("http")->debug("{} {} {} {}", req.remote_addr, req.method, req.path, res.status);
    obs->OnResponse(req, res);
  });
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
