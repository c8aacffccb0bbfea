#include "cogo/orchestrator/brain.h"

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <chrono>
#include <limits>

#include "cogo/base/clock.h"
#include "cogo/bus/bus.h"
#include "cogo/bus/inspect.h"
#include "cogo/bus/keys.h"
#include "cogo/db/pool.h"
#include "cogo/orchestrator/request_view.h"
#include "cogo/orchestrator/version_store.h"
#include "cogo/policy/admit.h"
#include "cogo/workflow/api.h"
#include "cogo/workflow/runs.h"
#include "orchestrator/ask.h"

namespace cogo::orchestrator {
namespace {

using nlohmann::json;

// The `decided` event's detail; sql/004 (and 016) copy it into the decisions table.
std::string DecisionDetail(const Plan& plan, const char* source, bool canary) {
  json d = json::parse(PlanJson(plan));
  d["target"] = plan.rule.target.Route();
  d["source"] = source;
  d["canary"] = canary;
  return d.dump();
}

// A workflow decision in the decisions table's shape: the workflow stands where the agent
// would, its pinned version is the version and its run limits the budget (0: none).
std::string DecisionDetail(const Plan& plan, const char* source, const workflow::DefinitionCatalog& catalog,
                           const workflow::Started& started) {
  json d = json::parse(PlanJson(plan));
  const auto entry = catalog.Current(plan.rule.workflow);
  const auto& limits = entry.definition->limits;
  d["target"] = "workflow/" + plan.rule.workflow;
  d["agent_id"] = plan.rule.workflow;
  d["model"] = "workflow";
  d["version"] = std::to_string(started.version);
  d["budget"] = {{"maxCostUsd", limits.max_cost_usd.value_or(0.0)}, {"maxTokens", limits.max_tokens.value_or(0)}};
  d["ttl_ms"] = 0;
  d["run_id"] = started.run_id;
  d["source"] = source;
  return d.dump();
}

// A plan that names a workflow starts its run with the request's payload as the parameters.
// The run's idempotency key is the decide message's id, so a decide handled twice (a lost
// completion, a reclaimed lease) finds the run it started instead of starting another.
runtime::HandlerResult StartPlannedRun(const BrainConfig& config, db::ConnectionPool& pool,
                                       const bus::ClaimedMessage& m, const Plan& plan, const json& input) {
  using runtime::HandlerResult;
  if (!config.workflows) return HandlerResult::Fail("unknown_workflow", "this brain runs no workflows");
  workflow::StartRequest request{m.tenant, plan.rule.workflow, input, "decide:" + std::to_string(m.lease.message_id)};
  workflow::Started started;
  try {
    pool.With([&](pqxx::connection& conn) { started = workflow::StartRun(conn, *config.workflows, request); });
  } catch (const workflow::RunError& e) {
    return HandlerResult::Fail(e.reason(), "parameters" + (e.path().empty() ? "" : "." + e.path()) + ": " + e.what());
  }
  json out = json::parse(PlanJson(plan));
  out["workflow_run"] = {{"run_id", started.run_id}, {"workflow_id", plan.rule.workflow}, {"version", started.version}};
  auto result = HandlerResult::Complete(out.dump(), plan.intent + " -> workflow " + plan.rule.workflow + " run " +
                                                        std::to_string(started.run_id));
  result.events.push_back({0, "decided", DecisionDetail(plan, "decide", *config.workflows, started)});
  return result;
}

// The plan with the agent version weighted choice gives `request_id` (the rule's own version
// when the brain keeps no versions).
VersionBook::Chosen WithChosenVersion(const BrainConfig& config, const Plan& plan, const std::string& request_id) {
  if (!config.versions || !plan.rule.workflow.empty()) return {plan, false};
  return config.versions->Choose(plan, request_id);
}

}  // namespace

std::optional<std::string> Classify(providers::ModelProvider& provider, const RoutingTable& table,
                                    const std::string& intent, const std::string& payload_json,
                                    const providers::CallControl& control, policy::Usage* usage) {
  const auto [system, user] = ClassificationPrompt(intent, payload_json, table);
  providers::ChatRequest request;
  request.model = table.classifier().model;
  request.max_tokens = table.classifier().max_tokens;
  request.temperature = 0.0;
  request.messages = {{"system", system}, {"user", user}};
  request.control = control;
  const auto response = provider.Chat(request);
  if (usage != nullptr) *usage += response.usage;
  return ParseClassification(response.content, table);
}

std::vector<std::string> CheckWorkflowRules(const RoutingTable& table, const workflow::DefinitionCatalog* catalog) {
  std::vector<std::string> problems;
  for (const auto& [intent, rule] : table.rules()) {
    if (rule.workflow.empty()) continue;
    const auto definition = catalog == nullptr ? nullptr : catalog->Current(rule.workflow).definition;
    if (!definition) {
      problems.push_back("rule " + intent + ": no workflow definition named " + rule.workflow);
    } else if (definition->service_role_only) {
      // A routing rule would let any tenant's request start what only operators may.
      problems.push_back("rule " + intent + ": the workflow " + rule.workflow + " is for service_role tokens only");
    }
  }
  return problems;
}

DecideResult DecideWithClassifier(const BrainConfig& config, const std::string& intent,
                                  const std::string& payload_json,
                                  const providers::CallControl& control, policy::Usage* usage) {
  std::optional<std::string> classified;
  if (NeedsClassification(intent, *config.routing) && config.classifier) {
    classified = Classify(*config.classifier, *config.routing, intent, payload_json, control, usage);
  }
  return Decide(intent, *config.routing, classified);
}

runtime::Handler MakeDecideHandler(BrainConfig config, std::shared_ptr<db::ConnectionPool> pool,
                                   std::shared_ptr<spdlog::logger> logger) {
  return [config, pool, logger](runtime::HandlerContext& ctx) {
    using runtime::HandlerResult;
    const auto& m = ctx.message;
    json request = json::parse(m.payload_json, nullptr, false);
    if (request.is_discarded() || !request.is_object() || !request.contains("intent") ||
        !request["intent"].is_string()) {
      return HandlerResult::Fail("invalid_request", "the decide payload needs a string intent");
    }
    const auto intent = request["intent"].get<std::string>();
    const json input = request.contains("payload") ? request["payload"] : json::object();
    const auto input_json = input.dump();
    DecideResult decided;
    try {
      providers::CallControl control{ctx.stop, std::nullopt};
      policy::Usage usage;
      decided = DecideWithClassifier(config, intent, input_json, control, &usage);
      if (usage.total_tokens() > 0) (void)ctx.usage.Report(usage);
    } catch (const providers::ProviderError& e) {
      if (e.retryable()) return HandlerResult::Retry("classifier_unavailable", e.what());
      logger->warn("decide {}: classifier failed for good: {}", m.lease.message_id, e.what());
      decided = Decide(intent, *config.routing, std::nullopt);
    }
    if (const auto* failure = std::get_if<DecideFailure>(&decided)) {
      logger->info("decide {}: {} for intent {}", m.lease.message_id, failure->reason, intent);
      return HandlerResult::Fail(failure->reason, failure->detail);
    }
    const auto& decided_plan = std::get<Plan>(decided);
    if (!decided_plan.rule.workflow.empty()) return StartPlannedRun(config, *pool, m, decided_plan, input);
    const auto chosen = WithChosenVersion(config, decided_plan, std::to_string(m.lease.message_id));
    const auto& plan = chosen.plan;
    auto result = HandlerResult::Complete(PlanJson(plan), intent + " -> " + Destination(plan.rule));
    // Issued when the database handed the decide message out: the TTL runs on the database's
    // clock, which the executor and the workers judge it by (no host's wall clock enters).
    auto execute = ExecuteMessage(plan, base::FromEpochSeconds(m.claimed_at_epoch), input_json, m.tenant,
                                  m.route.shard, config.execute_max_attempts);
    execute.correlation_id = std::to_string(m.lease.message_id);
    result.publish.push_back(std::move(execute));
    result.events.push_back({0, "decided", DecisionDetail(plan, "decide", chosen.canary)});
    return result;
  };
}

runtime::WorkerOptions DecideWorkerOptions(runtime::WorkerOptions worker) {
  worker.durable_outcomes = false;
  return worker;
}

namespace {

// The REST handlers; shared by the routes, alive as long as any of them.
class BrainApi {
 public:
  BrainApi(http::JsonService& service, BrainApiOptions options, BrainConfig config,
           std::shared_ptr<spdlog::logger> logger)
      : service_(service), options_(options), config_(std::move(config)), logger_(std::move(logger)) {}

  http::Response PlanOnly(const http::Request& req) {
    auto parsed = ParseAsk(std::string(req.body()), false, false, options_.max_body_bytes);
    if (const auto* e = std::get_if<AskError>(&parsed)) return http::Error(e->status, e->error, e->message);
    auto plan = PlanFor(std::get<Ask>(parsed));
    if (auto* refusal = std::get_if<http::Response>(&plan)) return std::move(*refusal);
    const auto chosen = WithChosenVersion(config_, std::get<Plan>(plan), std::string(req.id()));
    const auto& p = chosen.plan;
    json out = {{"plan", json::parse(PlanJson(p))}};
    if (p.rule.workflow.empty()) {
      out["canary"] = chosen.canary;
      out["assignment"] = json::parse(policy::ToJson(BuildAssignment(p, std::chrono::system_clock::now())));
    }
    return http::Json(200, out.dump());
  }

  http::Response Execute(const http::Request& req) {
    auto parsed = ParseAsk(std::string(req.body()), true, true, options_.max_body_bytes);
    if (const auto* e = std::get_if<AskError>(&parsed)) return http::Error(e->status, e->error, e->message);
    const auto& ask = std::get<Ask>(parsed);
    const std::string key(req.Header("Idempotency-Key").value_or(""));
    if (req.Header("Idempotency-Key") && !bus::ValidIdempotencyKey(key)) {
      return http::Error(400, "invalid_idempotency_key", "Idempotency-Key must be 1..200 printable ASCII characters");
    }
    auto planned = PlanFor(ask);
    if (auto* refusal = std::get_if<http::Response>(&planned)) return std::move(*refusal);
    if (!std::get<Plan>(planned).rule.workflow.empty()) return ExecuteWorkflow(req, ask, std::get<Plan>(planned), key);
    // A plan given by the caller is executed as given; a decided one gets its agent version.
    const auto chosen = ask.plan_json ? VersionBook::Chosen{std::get<Plan>(planned), false}
                                      : WithChosenVersion(config_, std::get<Plan>(planned), key.empty() ? std::string(req.id()) : key);
    const auto& plan = chosen.plan;
    if (auto refusal = Inadmissible(plan)) return std::move(*refusal);
    bus::Published published;
    service_.pool().With([&](pqxx::connection& conn) {
      bus::Bus bus(conn);
      pqxx::work txn(conn);
      // Issued at the database's now(), the clock the executor and the workers judge the TTL by.
      const auto issued_at = base::FromEpochSeconds(txn.exec1("SELECT extract(epoch FROM now())::float8")[0].as<double>());
      auto execute = ExecuteMessage(plan, issued_at, ask.payload_json, ask.tenant,
                                    bus::ShardForTenant(ask.tenant, options_.shards), config_.execute_max_attempts);
      execute.idempotency_key = key;
      published = bus.Publish(txn, execute);
      if (published.created) bus.AddEvents(txn, {{published.id, "decided", DecisionDetail(plan, "api", chosen.canary)}});
      txn.commit();
    });
    logger_->info("execute {} enqueued for tenant {} ({}){} (request {})", published.id, ask.tenant,
                  plan.rule.target.Route(), published.created ? "" : " (idempotent repeat)", req.id());
    json out = {{"ids", {published.id}}, {"created", published.created}, {"plan", json::parse(PlanJson(plan))}};
    return http::Json(published.created ? 202 : 200, out.dump());
  }

  http::Response State(const http::Request& req) {
    json out;
    service_.Read(req, [&](pqxx::read_transaction& txn) {
      out["routes"] = json::parse(txn.exec(R"SQL(
SELECT coalesce(jsonb_agg(r ORDER BY r.service, r.role), '[]')::text FROM (
  SELECT service, role,
         count(*) FILTER (WHERE status = 'queued') AS depth,
         count(*) FILTER (WHERE status = 'running') AS in_flight,
         extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'queued'))::float8
           AS oldest_queued_age_s
  FROM agent_messages WHERE status IN ('queued', 'running') GROUP BY service, role) r
)SQL")[0][0].as<std::string>());
      int64_t in_flight = 0;
      for (const auto& route : out["routes"]) in_flight += route["in_flight"].get<int64_t>();
      out["in_flight"] = in_flight;
      out["workers"] = json::parse(bus::WorkersJson(txn));
      out["recent_failures"] = json::parse(txn.exec(R"SQL(
SELECT coalesce(jsonb_agg(f ORDER BY f.last_error_at DESC), '[]')::text FROM (
  SELECT id, service, role, tenant, status, last_error, last_error_at FROM agent_messages
  WHERE status IN ('failed', 'dead') ORDER BY last_error_at DESC NULLS LAST LIMIT 20) f
)SQL")[0][0].as<std::string>());
      if (config_.workflows) {
        out["workflows"] = json::parse(workflow::WorkflowStateJson(txn, *config_.workflows, std::nullopt));
      }
      out["agents"] = json::parse(AgentsStateJson(txn, 3600));
    });
    out["routing"] = json::parse(config_.routing->ToJson());
    out["policy"] = json::parse(config_.policy_json, nullptr, false);
    return http::Json(200, out.dump());
  }

  // Another tenant's message is 404 like an absent one, so a tenant token cannot probe ids.
  http::Response Message(const http::Request& req) {
    const int64_t id = http::ParseId(req.Param("id"));
    if (id == 0) return http::Error(404, "not_found", "no such message");
    std::optional<std::string> view;
    service_.Read(req, [&](pqxx::read_transaction& txn) {
      view = RequestViewJson(txn, id, req.TenantScope());
      if (view) {
        json v = json::parse(*view);
        v["message"] = json::parse(*bus::MessageJson(txn, id));
        view = v.dump();
      }
    });
    if (!view) return http::Error(404, "not_found", "no such message");
    return http::Json(200, *view);
  }

 private:
  // A workflow plan starts its run (the payload as parameters) and records the decision on
  // the run's start message, in one transaction.
  http::Response ExecuteWorkflow(const http::Request& req, const Ask& ask, const Plan& plan, const std::string& key) {
    if (!config_.workflows || !config_.workflows->Current(plan.rule.workflow).definition) {
      return http::Error(422, "unknown_workflow", "the plan names a workflow this brain does not run");
    }
    workflow::StartRequest start{ask.tenant, plan.rule.workflow, json::parse(ask.payload_json), key};
    workflow::Started started;
    try {
      service_.pool().With([&](pqxx::connection& conn) {
        bus::Bus bus(conn);
        pqxx::work txn(conn);
        started = workflow::StartRun(txn, bus, *config_.workflows, start);
        if (started.created) {
          bus.AddEvents(txn, {{started.start_message_id, "decided", DecisionDetail(plan, "api", *config_.workflows, started)}});
        }
        txn.commit();
      });
    } catch (const workflow::RunError& e) {
      return http::Error(400, e.reason(), "parameters" + (e.path().empty() ? "" : "." + e.path()) + ": " + e.what());
    }
    logger_->info("workflow {} run {} started for tenant {}{} (request {})", plan.rule.workflow, started.run_id,
                  ask.tenant, started.created ? "" : " (idempotent repeat)", req.id());
    json out = {{"runId", started.run_id}, {"workflowId", plan.rule.workflow}, {"version", started.version},
                {"created", started.created}, {"plan", json::parse(PlanJson(plan))}};
    return http::Json(started.created ? 202 : 200, out.dump());
  }

  // The plan (classifying when needed), or the refusal to send.
  std::variant<Plan, http::Response> PlanFor(const Ask& ask) {
    if (ask.plan_json) {
      auto parsed = ParsePlanJson(*ask.plan_json);
      if (const auto* e = std::get_if<RoutingConfigError>(&parsed)) {
        return http::Error(400, "invalid_plan", e->path + ": " + e->message);
      }
      return std::get<Plan>(std::move(parsed));
    }
    try {
      auto decided = DecideWithClassifier(config_, ask.intent, ask.payload_json, {}, nullptr);
      if (const auto* f = std::get_if<DecideFailure>(&decided)) return http::Error(422, f->reason, f->detail);
      return std::get<Plan>(std::move(decided));
    } catch (const providers::ProviderError& e) {
      return http::Error(503, "classifier_unavailable", e.what());
    }
  }

  // The policy's verdict on a plan, as the executor will judge it (spend aside).
  std::optional<http::Response> Inadmissible(const Plan& plan) {
    const auto now = std::chrono::system_clock::now();
    const auto envelope = BuildAssignment(plan, now);
    const auto decision = policy::Admit(envelope, config_.policy->Lookup(envelope), std::nullopt,
                                        {0.0, std::numeric_limits<double>::infinity()}, now);
    if (decision.admitted()) return std::nullopt;
    return http::Error(422, "policy_" + std::string(policy::ReasonName(*decision.reject)), decision.detail);
  }

  http::JsonService& service_;
  BrainApiOptions options_;
  BrainConfig config_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace

std::vector<http::Route> BrainRoutes(http::JsonService& service, BrainApiOptions options,
                                     BrainConfig config, std::shared_ptr<spdlog::logger> logger) {
  auto api = std::make_shared<BrainApi>(service, options, std::move(config), std::move(logger));
  using http::Access;
  return {
      {"POST", "/api/orchestrator/plan", Access::kServiceRole, "plan an intent; writes nothing",
       [api](const http::Request& r) { return api->PlanOnly(r); }},
      {"POST", "/api/orchestrator/execute", Access::kServiceRole,
       "plan (or take a plan), check it against the policy, enqueue orchestrator/execute",
       [api](const http::Request& r) { return api->Execute(r); }},
      {"GET", "/api/orchestrator/state", Access::kServiceRole,
       "queues, workers, recent failures, routing and policy",
       [api](const http::Request& r) { return api->State(r); }},
      {"GET", "/api/messages/{id}", Access::kAnyToken,
       "a request's view and its message row; tenant tokens see their tenant's only",
       [api](const http::Request& r) { return api->Message(r); }},
  };
}

}  // namespace cogo::orchestrator
