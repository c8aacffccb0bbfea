#include "cogo/rag/api.h"

#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include <algorithm>
#include <thread>

#include "cogo/bus/bus.h"
#include "rag/statements.h"

namespace cogo::rag {
namespace {

using nlohmann::json;

http::Response FromJsonError(const config::JsonError& e) {
  const auto refusal = config::ToRequestError(e);
  return http::Error(400, refusal.code, refusal.message);
}

struct Outcome {
  std::string status;
  std::string result;
  std::string error;
};

}  // namespace

std::vector<http::Route> RagRoutes(http::JsonService& service, RagApiOptions options,
                                   std::shared_ptr<spdlog::logger> logger) {
  using http::Access;
  std::vector<http::Route> routes;

  routes.push_back({"POST", "/api/rag/query", Access::kAnyToken, "the tenant's chunks nearest a query",
                    [&service, options, logger](const http::Request& req) -> http::Response {
    QueryInput input;
    std::string named;
    try {
      const auto doc = config::JsonDocument::Parse(req.body(), {8, false});
      const auto body = doc.root().AsObject();
      named = body.Has("tenant") ? body.Name("tenant", config::kTenantName) : "";
      input = ReadQuery(body, options.query);
      body.Finish();
    } catch (const config::JsonError& e) {
      return FromJsonError(e);
    }
    auto acting = http::ActingTenant(req, named, "the tenant to search");
    if (auto* refused = std::get_if<http::Response>(&acting)) return *refused;
    bus::PublishRequest message;
    message.service = "rag";
    message.role = "query";
    message.tenant = std::get<std::string>(acting);
    message.payload_json = json{{"query", input.query}, {"k", input.k}}.dump();
    message.max_attempts = 1;  // a person is waiting: answer or fail, never retry later
    message.priority = 10;
    message.correlation_id = "api:" + std::string(req.id());
    int64_t id = 0;
    service.pool().With([&](pqxx::connection& conn) { id = bus::Bus(conn).Publish(message).id; });

    // The dispatcher answers in milliseconds; look often at first, then less.
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    auto pause = std::chrono::milliseconds(1);
    Outcome outcome;
    while (true) {
      service.Read(req, [&](pqxx::read_transaction& txn) {
        const auto row = txn.exec_params1(sql::kMessageOutcome, id);
        outcome = {row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>()};
      });
      if (outcome.status != "queued" && outcome.status != "running") break;
      if (std::chrono::steady_clock::now() >= deadline) {
        bool cancelled = false;
        service.pool().With([&](pqxx::connection& conn) {
          cancelled = bus::Bus(conn).Cancel(id, "the API caller stopped waiting");
        });
        if (cancelled) {
          logger->warn("rag query {} unanswered after {} ms (is a cogo-rag-dispatcher running?)", id,
                       options.timeout.count());
          return http::Error(504, "retrieval_timeout", "no dispatcher answered in time");
        }
        continue;  // it finished just now: read its outcome
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
    if (outcome.status == "done") return http::Json(200, outcome.result);
    // The failure's reason (its first word) only: the rest may quote the query.
    const std::string reason = outcome.error.substr(0, outcome.error.find(':'));
    return http::Error(502, "retrieval_failed", reason.empty() ? outcome.status : reason);
  }});

  return routes;
}

}  // namespace cogo::rag
