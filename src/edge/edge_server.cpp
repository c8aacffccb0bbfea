#include "cogo/edge/edge_server.h"

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>

#include "cogo/base/flat_combiner.h"
#include "cogo/base/unix_time.h"
#include "cogo/bus/bus.h"
#include "cogo/bus/keys.h"
#include "cogo/db/reconnect.h"
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
    const Inserted inserted = inserts_.Submit(std::move(message), [this](const std::vector<bus::PublishRequest*>& group) {
      return Insert(group);
    });
    if (inserted.error) std::rethrow_exception(inserted.error);
    const bus::Published& published = inserted.published;
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
  // What one request's insert came to: its message, or the failure its HTTP answer reports.
  struct Inserted {
    bus::Published published;
    std::exception_ptr error;
  };

  // One transaction for the requests that arrived while the previous one was being written
  // (base::FlatCombiner): under load one insert statement and one WAL flush serve many
  // requests; alone, a request is written at once. A group that the database refused as a whole
  // (a constraint, a deadlock with another edge) rolled back, so its requests are
  // written again one at a time and a failure belongs to the request it concerns. A lost
  // connection or a commit in doubt is every member's answer: the group is never written twice.
  std::vector<Inserted> Insert(const std::vector<bus::PublishRequest*>& group) {
    std::vector<bus::PublishRequest> messages;
    messages.reserve(group.size());
    for (bus::PublishRequest* m : group) messages.push_back(std::move(*m));
    try {
      std::vector<Inserted> out;
      for (auto& published : InsertTogether(messages)) out.push_back({published, nullptr});
      return out;
    } catch (const std::exception& e) {
      const auto kind = db::Classify(e);
      if (messages.size() == 1 || (kind != db::FailureKind::other && kind != db::FailureKind::rolled_back)) throw;
      logger_->warn("a group of {} inserts was refused ({}); writing them one at a time", messages.size(),
                    db::FailureKindName(kind));
    }
    std::vector<Inserted> out(messages.size());
    for (size_t i = 0; i < messages.size(); ++i) {
      try {
        out[i].published = InsertTogether({messages[i]}).front();
      } catch (...) {
        out[i].error = std::current_exception();
      }
    }
    return out;
  }

  // A single keyed request is one autocommitted statement, which the pool may run again after a
  // lost connection (the key finds the first message). Anything else runs in an explicit
  // transaction: a connection lost before its commit wrote nothing and is retried, while a commit
  // whose answer was lost is reported (never repeated), so a request is never enqueued twice.
  std::vector<bus::Published> InsertTogether(const std::vector<bus::PublishRequest>& messages) {
    std::vector<bus::Published> published;
    service_.pool().With([&](pqxx::connection& conn) {
      bus::Bus bus(conn);
      if (messages.size() == 1 && !messages.front().idempotency_key.empty()) {
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
  base::FlatCombiner<bus::PublishRequest, Inserted> inserts_;
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
