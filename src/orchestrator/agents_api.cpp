#include "cogo/orchestrator/agents_api.h"

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <limits>

#include "cogo/config/json_reader.h"
#include "cogo/db/pool.h"
#include "cogo/orchestrator/version_store.h"

namespace cogo::orchestrator {
namespace {

using nlohmann::json;

constexpr size_t kMaxBodyBytes = 16 * 1024;
constexpr int kLiveWindowSeconds = 3600;

// $1 agent id. The newest changes first.
constexpr const char* kAgentEvents = R"SQL(
SELECT coalesce(jsonb_agg(e ORDER BY e.id DESC), '[]')::text FROM (
  SELECT id, version, action, status_before, status_after, weight_before, weight_after, actor,
         reason, message_id, at
  FROM agent_version_events WHERE agent_id = $1 ORDER BY id DESC LIMIT 50) e)SQL";

// $1 decision id -> its tenant.
constexpr const char* kDecisionTenant = "SELECT tenant FROM decisions WHERE id = $1";

// $1 decision id, $2 correct, $3 expected intent (NULL: none), $4 actor.
constexpr const char* kAddFeedback = R"SQL(
INSERT INTO decision_feedback (decision_id, correct, expected_intent, actor)
VALUES ($1, $2, $3, $4) RETURNING id)SQL";

// $1 days back (UTC dates), $2 agent, $3 version, $4 intent ('' = any), $5 tenant ('' = any).
// Rows per day, agent, version and intent, and the totals over them.
constexpr const char* kQuality = R"SQL(
WITH picked AS (
  SELECT * FROM decision_outcomes
  WHERE decided_at >= (now() AT TIME ZONE 'UTC')::date - ($1 - 1) * interval '1 day'
    AND ($2 = '' OR agent_id = $2) AND ($3 = '' OR version = $3) AND ($4 = '' OR intent = $4)
    AND ($5 = '' OR tenant = $5))
SELECT jsonb_build_object(
  'rows', (SELECT coalesce(jsonb_agg(q ORDER BY q.day DESC, q.agent_id, q.version, q.intent), '[]') FROM (
    SELECT (decided_at AT TIME ZONE 'UTC')::date AS day, agent_id, version, intent,
           count(*) AS decisions, count(*) FILTER (WHERE canary) AS canary_decisions,
           count(correct) AS judged, count(*) FILTER (WHERE correct) AS correct,
           count(*) FILTER (WHERE outcome = 'pending') AS pending,
           count(feedback_correct) AS with_feedback,
           round(count(*) FILTER (WHERE correct)::numeric / nullif(count(correct), 0), 4) AS quality
    FROM picked GROUP BY 1, 2, 3, 4) q),
  'total', (SELECT jsonb_build_object(
      'decisions', count(*), 'judged', count(correct), 'correct', count(*) FILTER (WHERE correct),
      'quality', round(count(*) FILTER (WHERE correct)::numeric / nullif(count(correct), 0), 4))
    FROM picked))::text)SQL";

http::Response FromJsonError(const config::JsonError& e) {
  const auto refusal = config::ToRequestError(e);
  return http::Error(400, refusal.code, refusal.message);
}

int RefusalStatus(const std::string& reason) {
  if (reason == "unknown_version") return 404;
  if (reason == "unknown_agent" || reason == "incomplete_proposal" || reason.rfind("policy_", 0) == 0) return 422;
  return 409;  // the versions' state does not allow it
}

std::string ActorName(const http::Request& req) {
  const auto* claims = req.claims();
  if (claims == nullptr) return "anonymous";
  return std::string(auth::ToString(claims->role)) + (claims->sub.empty() ? "" : ":" + claims->sub);
}

// A path capture that must be a name; empty when it is not one.
std::string PathName(const http::Request& req, std::string_view param, const config::NameRule& rule) {
  const std::string value(req.Param(param));
  return config::IsValidName(value, rule) ? value : "";
}

class AgentsApi {
 public:
  AgentsApi(http::JsonService& service, std::shared_ptr<const RoutingTable> routing,
            std::shared_ptr<const policy::PolicyTable> policy, std::shared_ptr<VersionBook> versions,
            std::shared_ptr<spdlog::logger> logger)
      : service_(service), routing_(std::move(routing)), policy_(std::move(policy)),
        versions_(std::move(versions)), logger_(std::move(logger)) {}

  http::Response List(const http::Request& req) {
    std::string agents;
    service_.Read(req, [&](pqxx::read_transaction& txn) { agents = AgentsStateJson(txn, kLiveWindowSeconds); });
    return http::Json(200, agents);
  }

  http::Response Show(const http::Request& req) {
    const auto agent = PathName(req, "agent", kAgentIdName);
    json out;
    service_.Read(req, [&](pqxx::read_transaction& txn) {
      const auto state = json::parse(AgentsStateJson(txn, kLiveWindowSeconds));
      if (!agent.empty() && state.contains(agent)) {
        out = state[agent];
        out["agent_id"] = agent;
        out["events"] = json::parse(txn.exec_params1(kAgentEvents, agent)[0].as<std::string>());
      }
    });
    if (out.is_null()) return http::Error(404, "not_found", "no such agent");
    return http::Json(200, out.dump());
  }

  http::Response Act(const http::Request& req, VersionAction action) {
    const auto agent = PathName(req, "agent", kAgentIdName);
    if (agent.empty()) return http::Error(404, "not_found", "no such agent");
    VersionOp op;
    op.action = action;
    op.agent_id = agent;
    Actor actor{ActorName(req), "", 0};
    if (req.body().size() > kMaxBodyBytes) return http::Error(413, "body_too_large", "at most 16 KiB");
    try {
      const auto doc = config::JsonDocument::Parse(req.body().empty() ? "{}" : req.body(), {8, false});
      const auto o = doc.root().AsObject();
      if (action == VersionAction::propose) {
        op.version = o.Name("version", kVersionName);
        op.proposal.model = o.StringOr("model", "", {.max_bytes = 128});
        if (const auto budget = o.OptionalObject("budget")) {
          op.proposal.budget.max_cost_usd = budget->DoubleOr("maxCostUsd", 0, config::DoubleRange::Positive());
          op.proposal.budget.max_tokens = budget->IntOr("maxTokens", 0, 1, std::numeric_limits<int64_t>::max());
          budget->Finish();
        }
        op.proposal.ttl = std::chrono::milliseconds(o.IntOr("ttl_ms", 0, 1, policy::kMaxTtl.count()));
        actor.reason = o.StringOr("note", "", {.allow_empty = true, .max_bytes = 1000});
      } else {
        op.version = PathName(req, "version", kVersionName);
        if (op.version.empty()) return http::Error(404, "unknown_version", "no such version");
        if (action == VersionAction::canary) op.weight = o.Double("weight", config::DoubleRange::Between(0, 100));
        actor.reason = o.StringOr("reason", "", {.allow_empty = true, .max_bytes = 1000});
      }
      o.Finish();
    } catch (const config::JsonError& e) {
      return FromJsonError(e);
    }
    OpResult result;
    service_.pool().With([&](pqxx::connection& conn) { result = RunVersionOp(conn, op, actor, routing_.get(), policy_.get()); });
    if (const auto* refusal = std::get_if<OpRefusal>(&result)) {
      return http::Error(RefusalStatus(refusal->reason), refusal->reason, refusal->message);
    }
    if (versions_) versions_->Invalidate();
    const auto& changes = std::get<std::vector<VersionChange>>(result);
    logger_->info("agent {} version {}: {} by {} ({} rows changed, request {})", agent, op.version,
                  ActionName(action), actor.name, changes.size(), req.id());
    return http::Json(action == VersionAction::propose ? 201 : 200,
                      json{{"agent_id", agent}, {"version", op.version}, {"action", ActionName(action)},
                           {"changes", json::parse(ChangesJson(changes))}}
                          .dump());
  }

  http::Response Quality(const http::Request& req) {
    int days = 7;
    if (const auto text = req.Query("days")) {
      try {
        size_t used = 0;
        days = std::stoi(std::string(*text), &used);
        if (used != text->size()) days = 0;
      } catch (const std::exception&) {
        days = 0;
      }
      if (days < 1 || days > 366) return http::Error(400, "out_of_range", "days must be 1..366");
    }
    const auto text = [&](std::string_view name) { return std::string(req.Query(name).value_or("")); };
    std::string out;
    service_.Read(req, [&](pqxx::read_transaction& txn) {
      out = txn.exec_params1(kQuality, days, text("agent"), text("version"), text("intent"),
                             req.TenantScope().value_or(""))[0]
                .as<std::string>();
    });
    return http::Json(200, out);
  }

  // A tenant token labels its own tenant's decisions only; another's is 404 like an absent one.
  http::Response Feedback(const http::Request& req) {
    const int64_t id = http::ParseId(req.Param("id"));
    if (id == 0) return http::Error(404, "not_found", "no such decision");
    if (req.body().size() > kMaxBodyBytes) return http::Error(413, "body_too_large", "at most 16 KiB");
    bool correct = false;
    std::optional<std::string> expected;
    try {
      const auto doc = config::JsonDocument::Parse(req.body(), {8, false});
      const auto o = doc.root().AsObject();
      correct = o.Bool("correct");
      if (o.Has("expected_intent")) expected = o.Name("expected_intent", config::kIntentName);
      o.Finish();
    } catch (const config::JsonError& e) {
      return FromJsonError(e);
    }
    std::optional<int64_t> feedback_id;
    service_.pool().With([&](pqxx::connection& conn) {
      pqxx::work txn(conn);
      const auto tenant = txn.exec_params(kDecisionTenant, id);
      const auto scope = req.TenantScope();
      if (tenant.empty() || (scope && *scope != tenant[0][0].as<std::string>())) return;
      feedback_id = txn.exec_params1(kAddFeedback, id, correct, expected, ActorName(req))[0].as<int64_t>();
      txn.commit();
    });
    if (!feedback_id) return http::Error(404, "not_found", "no such decision");
    json out = {{"feedbackId", *feedback_id}, {"decisionId", id}, {"correct", correct}};
    if (expected) out["expected_intent"] = *expected;
    return http::Json(201, out.dump());
  }

 private:
  http::JsonService& service_;
  std::shared_ptr<const RoutingTable> routing_;
  std::shared_ptr<const policy::PolicyTable> policy_;
  std::shared_ptr<VersionBook> versions_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace

std::vector<http::Route> AgentRoutes(http::JsonService& service, std::shared_ptr<const RoutingTable> routing,
                                     std::shared_ptr<const policy::PolicyTable> policy,
                                     std::shared_ptr<VersionBook> versions, std::shared_ptr<spdlog::logger> logger) {
  auto api = std::make_shared<AgentsApi>(service, std::move(routing), std::move(policy), std::move(versions),
                                         std::move(logger));
  using http::Access;
  const auto act = [api](VersionAction action) {
    return [api, action](const http::Request& r) { return api->Act(r, action); };
  };
  return {
      {"GET", "/api/agents", Access::kServiceRole, "every agent's versions, weights, status and live figures",
       [api](const http::Request& r) { return api->List(r); }},
      {"GET", "/api/agents/{agent}", Access::kServiceRole, "one agent's versions and its last 50 changes",
       [api](const http::Request& r) { return api->Show(r); }},
      {"POST", "/api/agents/{agent}/versions", Access::kServiceRole, "propose a version", act(VersionAction::propose)},
      {"POST", "/api/agents/{agent}/versions/{version}/canary", Access::kServiceRole,
       "give a proposed or canary version a share of the traffic", act(VersionAction::canary)},
      {"POST", "/api/agents/{agent}/versions/{version}/promote", Access::kServiceRole,
       "make a version the active one; the old one retires", act(VersionAction::promote)},
      {"POST", "/api/agents/{agent}/versions/{version}/rollback", Access::kServiceRole,
       "retire a version; an active one hands back to the previous", act(VersionAction::rollback)},
      {"GET", "/api/decisions/quality", Access::kAnyToken,
       "decision quality per day, agent, version and intent (a tenant token: its own decisions)",
       [api](const http::Request& r) { return api->Quality(r); }},
      {"POST", "/api/decisions/{id}/feedback", Access::kAnyToken,
       "label a decision correct or not (overrides its outcome)", [api](const http::Request& r) { return api->Feedback(r); }},
  };
}

}  // namespace cogo::orchestrator
