#include "cogo/kg/api.h"

#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include "cogo/kg/extract.h"
#include "rag/statements.h"

namespace cogo::kg {
namespace {

using nlohmann::json;
namespace sql = rag::sql;

// `text` with LIKE's wildcards and its escape character escaped.
std::string LikeEscaped(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::vector<http::Route> KgRoutes(http::JsonService& service) {
  using http::Access;
  std::vector<http::Route> routes;
  routes.push_back({"GET", "/api/kg/entities", Access::kAnyToken, "entities by name, with relations and provenance",
                    [&service](const http::Request& req) -> http::Response {
    const auto name = req.Query("name");
    if (!name || name->empty()) return http::Error(400, "missing_key", "name: the entity name to look for");
    if (name->size() > 200) return http::Error(400, "out_of_range", "name: at most 200 bytes");
    const std::string norm = NormalizeName(*name);
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

}  // namespace cogo::kg
