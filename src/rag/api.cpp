#include "cogo/rag/api.h"

#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include <algorithm>
#include <thread>

#include "cogo/bus/bus.h"
#include "cogo/kg/extract.h"
#include "rag/statements.h"

namespace cogo::rag {
namespace {

using nlohmann::json;

http::Response FromJsonError(const config::JsonError& e) {
  const auto refusal = config::ToRequestError(e);
  return http::Error(400, refusal.code, refusal.message);
}

// `text` with LIKE's wildcards and its escape character escaped.
std::string LikeEscaped(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
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

  routes.push_back({"GET", "/api/kg/entities", Access::kAnyToken, "entities by name, with relations and provenance",
                    [&service](const http::Request& req) -> http::Response {
    const auto name = req.Query("name");
    if (!name || name->empty()) return http::Error(400, "missing_key", "name: the entity name to look for");
    if (name->size() > 200) return http::Error(400, "out_of_range", "name: at most 200 bytes");
    const std::string norm = kg::NormalizeName(*name);
    if (norm.empty()) return http::Error(400, "invalid_value", "name: needs a letter or digit");
    int64_t limit = 20;
    if (const auto text = req.Query("limit")) {
      limit = http::ParseId(*text);
      if (limit < 1 || limit > 100) return http::Error(400, "out_of_range", "limit must be 1..100");
    }
    const auto named = req.Query("tenant");
    auto acting = http::ActingTenant(req, named ? std::string(*named) : "", "the tenant to read");
    if (auto* refused = std::get_if<http::Response>(&acting)) return *refused;
    const std::string tenant = std::get<std::string>(acting);
    json entities = json::array();
    service.Read(req, [&](pqxx::read_transaction& txn) {
      entities = json::array();
      for (const auto& e : txn.exec_params(sql::kFindEntities, tenant, norm, LikeEscaped(norm), limit)) {
        const int64_t id = e[0].as<int64_t>();
        json relations = json::array(), provenance = json::array();
        for (const auto& r : txn.exec_params(sql::kEntityRelations, tenant, id)) {
          relations.push_back({{"type", r[1].as<std::string>()},
                               {"direction", r[2].as<std::string>()},
                               {"entity", {{"name", r[3].as<std::string>()}, {"type", r[4].as<std::string>()}}},
                               {"weight", r[5].as<int64_t>()}});
        }
        for (const auto& p : txn.exec_params(sql::kEntityProvenance, tenant, id)) {
          provenance.push_back({{"chunk_id", p[0].as<int64_t>()}, {"doc_id", p[1].as<std::string>()},
                                {"text", p[2].as<std::string>()}});
        }
        entities.push_back({{"id", id}, {"name", e[1].as<std::string>()}, {"type", e[2].as<std::string>()},
                            {"mentions", e[3].as<int64_t>()}, {"relations", std::move(relations)},
                            {"provenance", std::move(provenance)}});
      }
    });
    return http::Json(200, json{{"entities", std::move(entities)}}.dump());
  }});
  return routes;
}

}  // namespace cogo::rag
