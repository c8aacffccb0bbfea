#include "cogo/edge/edge_server.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include <chrono>
#include <optional>
#include <stdexcept>

#include "cogo/bus/bus.h"
#include "cogo/db/migrator.h"
#include "cogo/db/pool.h"
#include "cogo/orchestrator/request_view.h"
#include "http/json_http.h"
#include "http/server_runner.h"

namespace cogo::edge {
namespace {

using nlohmann::json;

constexpr const char* kIngressPath = "/functions/v1/orchestrator-chat";

std::optional<std::string> Header(const httplib::Request& req, const char* name) {
  if (!req.has_header(name)) return std::nullopt;
  return req.get_header_value(name);
}

std::optional<std::string_view> View(const std::optional<std::string>& value) {
  if (!value) return std::nullopt;
  return std::string_view(*value);
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double MonotonicSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

class EdgeServer::Impl {
 public:
  Impl(EdgeOptions options, std::shared_ptr<spdlog::logger> logger)
      : options_(std::move(options)),
        logger_(std::move(logger)),
        pool_(options_.database_url, "cogo-edge", static_cast<size_t>(options_.threads)),
        limiter_(options_.rate),
        runner_(server_) {
    if (options_.jwt_secret.empty()) throw std::invalid_argument("COGO_JWT_SECRET is not set");
    if (options_.publishable_key.empty()) {
      throw std::invalid_argument("COGO_PUBLISHABLE_KEY is not set");
    }
    const int threads = options_.threads;
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    // Bodies a little over the cap still reach ParseIngress for a precise JSON 413; far larger
    // ones are cut off by httplib (also answered with a JSON 413).
    server_.set_payload_max_length(std::max<size_t>(options_.limits.max_body_bytes * 4, 1 << 20));
    server_.set_read_timeout(10, 0);
    server_.set_write_timeout(10, 0);
    http::InstallJsonErrors(server_);
    server_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      http::SendJson(res, 200, R"({"status":"ok"})");
    });
    server_.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) { readiness_.Send(res, pool_); });
    server_.Post(kIngressPath, [this](const httplib::Request& req, httplib::Response& res) {
      Enqueue(req, res);
    });
    server_.Get(std::string(kIngressPath) + "/([^/]+)",
                [this](const httplib::Request& req, httplib::Response& res) { Show(req, res); });
  }

  void Start() {
    port_ = runner_.Start(options_.host, options_.port);
    logger_->info("listening on http://{}:{}{} (shards {}, rate {}/s burst {})", options_.host,
                  port_, kIngressPath, options_.shards, options_.rate.rate_per_s,
                  options_.rate.burst);
  }
  void Drain() { runner_.Stop(); }
  int port() const { return port_; }

 private:
  void Refuse(httplib::Response& res, int status, std::string_view error, std::string_view message,
              const char* what) {
    logger_->info("{} refused: {} {}", what, status, error);
    http::SendError(res, status, error, message);
  }

  // apikey, then the bearer token. nullopt: refused (the response is written).
  std::optional<Claims> Authenticate(const httplib::Request& req, httplib::Response& res,
                                     const char* what) {
    const auto apikey = Header(req, "apikey");
    if (auto e = CheckApiKey(View(apikey), options_.publishable_key)) {
      Refuse(res, HttpStatus(*e), ToString(*e), Describe(*e), what);
      return std::nullopt;
    }
    const auto authorization = Header(req, "Authorization");
    auto verified = VerifyAuthorizationHeader(View(authorization), options_.jwt_secret,
                                              NowSeconds(), options_.verify);
    if (!verified.ok()) {
      Refuse(res, HttpStatus(verified.error()), ToString(verified.error()),
             Describe(verified.error()), what);
      return std::nullopt;
    }
    return verified.claims();
  }

  void Enqueue(const httplib::Request& req, httplib::Response& res) {
    const char* what = "POST";
    const auto claims = Authenticate(req, res, what);
    if (!claims) return;
    const auto parsed = ParseIngress(req.body, req.get_header_value("Content-Type"), options_.limits);
    if (!parsed.ok()) {
      const auto& r = parsed.rejection();
      return Refuse(res, r.status, r.error, r.message, what);
    }
    const auto& request = parsed.request();
    if (auto e = CheckTenantAccess(*claims, request.tenant)) {
      return Refuse(res, HttpStatus(*e), ToString(*e), Describe(*e), what);
    }
    if (options_.check_intents && options_.known_intents.count(request.intent) == 0) {
      return Refuse(res, 422, "unknown_intent", "no routing rule handles this intent", what);
    }
    std::string idempotency_key;
    if (req.has_header("Idempotency-Key")) {
      idempotency_key = req.get_header_value("Idempotency-Key");
      if (!ValidIdempotencyKey(idempotency_key)) {
        return Refuse(res, 400, "invalid_idempotency_key",
                      "Idempotency-Key must be 1..200 printable ASCII characters", what);
      }
    }
    const auto taken = limiter_.Admit(request.tenant, MonotonicSeconds());
    if (!taken.allowed) {
      res.set_header("Retry-After", std::to_string(RetryAfterSeconds(taken.retry_after_s)));
      return Refuse(res, 429, "rate_limited", "too many requests for this tenant; retry later", what);
    }

    json payload = {{"tenant", request.tenant},
                    {"intent", request.intent},
                    {"payload", json::parse(request.payload_json)},
                    {"request", {{"role", ToString(claims->role)},
                                 {"sub", claims->sub},
                                 {"received_at_ms", NowSeconds() * 1000}}}};
    bus::PublishRequest message;
    message.service = "orchestrator";
    message.role = "decide";
    message.shard = ShardForTenant(request.tenant, options_.shards);
    message.tenant = request.tenant;
    message.payload_json = payload.dump();
    message.max_attempts = options_.max_attempts;
    message.idempotency_key = idempotency_key;
    try {
      bus::Published published;
      pool_.With([&](pqxx::connection& conn) { published = bus::Bus(conn).Publish(message); });
      logger_->info("enqueued decide {} for tenant {} intent {}{}", published.id, request.tenant,
                    request.intent, published.created ? "" : " (idempotent repeat)");
      json body = {{"id", published.id}, {"status_url", std::string(kIngressPath) + "/" + std::to_string(published.id)}};
      if (!published.created) body["duplicate"] = true;
      http::SendJson(res, 202, body.dump());
    } catch (const bus::InvalidMessage& e) {
      Refuse(res, 400, e.rejection().reason, e.rejection().detail, what);
    } catch (const std::exception& e) {
      logger_->error("enqueue failed: {}", e.what());
      http::SendError(res, 503, "unavailable", "the bus is unavailable; retry later");
    }
  }

  void Show(const httplib::Request& req, httplib::Response& res) {
    const char* what = "GET";
    const auto claims = Authenticate(req, res, what);
    if (!claims) return;
    const int64_t id = http::ParseId(req.matches[1]);
    if (id == 0) return Refuse(res, 404, "not_found", "no such request", what);
    std::optional<std::string> tenant;
    if (claims->role != Role::kServiceRole) tenant = claims->tenant;
    try {
      std::optional<std::string> view;
      pool_.With([&](pqxx::connection& conn) {
        pqxx::read_transaction txn(conn);
        view = orchestrator::RequestViewJson(txn, id, tenant);
      });
      if (!view) return Refuse(res, 404, "not_found", "no such request", what);
      http::SendJson(res, 200, *view);
    } catch (const std::exception& e) {
      logger_->error("read failed: {}", e.what());
      http::SendError(res, 503, "unavailable", "the bus is unavailable; retry later");
    }
  }

  EdgeOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  db::ConnectionPool pool_;
  RateLimiter limiter_;
  http::Readiness readiness_;
  httplib::Server server_;
  http::ServerRunner runner_;
  int port_ = 0;
};

EdgeServer::EdgeServer(EdgeOptions options, std::shared_ptr<spdlog::logger> logger)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(logger))) {}
EdgeServer::~EdgeServer() = default;
void EdgeServer::Start() { impl_->Start(); }
void EdgeServer::Drain() { impl_->Drain(); }
int EdgeServer::port() const { return impl_->port(); }

}  // namespace cogo::edge
