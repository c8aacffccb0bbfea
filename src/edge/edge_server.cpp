#include "cogo/edge/edge_server.h"

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <chrono>
#include <optional>
#include <stdexcept>

#include "cogo/base/flat_combiner.h"
#include "cogo/base/unix_time.h"
#include "cogo/bus/bus.h"
#include "cogo/bus/keys.h"
#include "cogo/orchestrator/request_view.h"

namespace cogo::edge {
namespace {

using nlohmann::json;

constexpr const char* kIngressPath = "/functions/v1/orchestrator-chat";

double MonotonicSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

http::Response Refusal(auth::AuthError error) {
  return http::Error(auth::HttpStatus(error), auth::ToString(error), auth::Describe(error));
}

class Ingress {
 public:
  Ingress(http::JsonService& service, EdgeOptions options, std::shared_ptr<spdlog::logger> logger)
      : service_(service), options_(std::move(options)), logger_(std::move(logger)), limiter_(options_.rate) {}

  http::Response Enqueue(const http::Request& req) {
    const auto parsed = ParseIngress(req.body(), req.Header("Content-Type").value_or(""), options_.limits);
    if (!parsed.ok()) {
      const auto& r = parsed.rejection();
      return http::Error(r.status, r.error, r.message);
    }
    const auto& request = parsed.request();
    if (auto refused = http::CheckTenant(req, request.tenant)) return std::move(*refused);
    if (options_.check_intents && options_.known_intents.count(request.intent) == 0) {
      return http::Error(422, "unknown_intent", "no routing rule handles this intent");
    }
    const std::string idempotency_key(req.Header("Idempotency-Key").value_or(""));
    if (req.Header("Idempotency-Key") && !bus::ValidIdempotencyKey(idempotency_key)) {
      return http::Error(400, "invalid_idempotency_key",
                         "Idempotency-Key must be 1..200 printable ASCII characters");
    }
    const auto taken = limiter_.Admit(request.tenant, MonotonicSeconds());
    if (!taken.allowed) {
      auto limited = http::Error(429, "rate_limited", "too many requests for this tenant; retry later");
      limited.headers.emplace_back("Retry-After", std::to_string(RetryAfterSeconds(taken.retry_after_s)));
      return limited;
    }

    const auto& claims = *req.claims();
    json payload = {{"tenant", request.tenant},
                    {"intent", request.intent},
                    {"payload", json::parse(request.payload_json)},
                    {"request", {{"role", auth::ToString(claims.role)},
                                 {"sub", claims.sub},
                                 {"received_at_ms", base::UnixSeconds() * 1000}}}};
    bus::PublishRequest message;
    message.service = "orchestrator";
    message.role = "decide";
    message.shard = bus::ShardForTenant(request.tenant, options_.shards);
    message.tenant = request.tenant;
    message.payload_json = payload.dump();
    message.max_attempts = options_.max_attempts;
    message.idempotency_key = idempotency_key;
    if (auto rejection = bus::Validate(message, bus::BusLimits{})) {
      return http::Error(400, rejection->reason, rejection->detail);
    }
    const bus::Published published = inserts_.Submit(std::move(message), [this](const std::vector<bus::PublishRequest*>& group) {
      return Insert(group);
    });
    logger_->info("enqueued decide {} for tenant {} intent {}{} (request {})", published.id, request.tenant,
                  request.intent, published.created ? "" : " (idempotent repeat)", req.id());
    json body = {{"id", published.id},
                 {"status_url", std::string(kIngressPath) + "/" + std::to_string(published.id)}};
    if (!published.created) body["duplicate"] = true;
    return http::Json(202, body.dump());
  }

  // Another tenant's request is 404 like an absent one.
  http::Response Show(const http::Request& req) {
    const int64_t id = http::ParseId(req.Param("id"));
    std::optional<std::string> view;
    if (id > 0) {
      service_.Read(req, [&](pqxx::read_transaction& txn) {
        view = orchestrator::RequestViewJson(txn, id, req.TenantScope());
      });
    }
    if (!view) return http::Error(404, "not_found", "no such request");
    return http::Json(200, *view);
  }

 private:
  // One transaction for the requests that arrived while the previous one was being written
  // (base::FlatCombiner): under load one insert statement and one WAL flush serve many
  // requests; alone, a request is written at once. The transaction's commit reports a doubt
  // instead of being repeated, so a request without an idempotency key is never enqueued twice;
  // with a key every message is found again, so those groups may run again on a fresh connection.
  std::vector<bus::Published> Insert(const std::vector<bus::PublishRequest*>& group) {
    std::vector<bus::PublishRequest> messages;
    messages.reserve(group.size());
    bool keyed = true;
    for (bus::PublishRequest* m : group) {
      keyed = keyed && !m->idempotency_key.empty();
      messages.push_back(std::move(*m));
    }
    std::vector<bus::Published> published;
    service_.pool().With([&](pqxx::connection& conn) {
      bus::Bus bus(conn);
      if (messages.size() == 1 && keyed) {
        published = {bus.Publish(messages.front())};
        return;
      }
      pqxx::work txn(conn);
      published = messages.size() == 1 ? std::vector<bus::Published>{bus.Publish(txn, messages.front())}
                                       : bus.PublishBatch(txn, messages);
      txn.commit();
    });
    return published;
  }

  http::JsonService& service_;
  EdgeOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  RateLimiter limiter_;
  base::FlatCombiner<bus::PublishRequest, bus::Published> inserts_;
};

}  // namespace

http::Authenticator EdgeAuthenticator(std::string jwt_secret, std::string publishable_key,
                                      auth::VerifyOptions verify) {
  if (publishable_key.empty()) throw std::invalid_argument("COGO_PUBLISHABLE_KEY is not set");
  if (jwt_secret.empty()) throw std::invalid_argument("COGO_JWT_SECRET is not set");
  auto bearer = http::BearerJwt(std::move(jwt_secret), verify);
  return [key = std::move(publishable_key), bearer = std::move(bearer)](
             const http::Request& req) -> std::variant<auth::Claims, http::Response> {
    if (auto e = auth::CheckApiKey(req.Header("apikey"), key)) return Refusal(*e);
    return bearer(req);
  };
}

std::vector<http::Route> EdgeRoutes(http::JsonService& service, EdgeOptions options,
                                    std::shared_ptr<spdlog::logger> logger) {
  logger->info("ingress {} (shards {}, rate {}/s burst {})", kIngressPath, options.shards,
               options.rate.rate_per_s, options.rate.burst);
  auto ingress = std::make_shared<Ingress>(service, std::move(options), std::move(logger));
  return {
      {"POST", kIngressPath, http::Access::kAnyToken,
       "authenticate, validate, rate-limit and enqueue orchestrator/decide -> 202 {id, status_url}",
       [ingress](const http::Request& r) { return ingress->Enqueue(r); }},
      {"GET", std::string(kIngressPath) + "/{id}", http::Access::kAnyToken,
       "a request's status, result and trail; tenant tokens see their tenant's only",
       [ingress](const http::Request& r) { return ingress->Show(r); }},
  };
}

}  // namespace cogo::edge
