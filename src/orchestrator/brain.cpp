#include "cogo/orchestrator/brain.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <chrono>
#include <limits>

#include "cogo/bus/bus.h"
#include "cogo/bus/inspect.h"
#include "cogo/db/migrator.h"
#include "cogo/db/pool.h"
#include "cogo/edge/ingress.h"
#include "cogo/orchestrator/request_view.h"
#include "cogo/policy/admit.h"
#include "http/json_http.h"
#include "http/server_runner.h"
#include "orchestrator/ask.h"

namespace cogo::orchestrator {
namespace {

using nlohmann::json;

// The `decided` event's detail; sql/004 copies it into the decisions table.
std::string DecisionDetail(const Plan& plan, const char* source) {
  json d = json::parse(PlanJson(plan));
  d["target"] = plan.rule.target.Route();
  d["source"] = source;
  return d.dump();
}

// Decide with classification when needed. Throws providers::ProviderError.
DecideResult DecideWithClassifier(const BrainConfig& config, const std::string& intent,
                                  const std::string& payload_json,
                                  const providers::CallControl& control, policy::Usage* usage) {
  std::optional<std::string> classified;
  if (NeedsClassification(intent, *config.routing) && config.classifier) {
    classified = Classify(*config.classifier, *config.routing, intent, payload_json, control, usage);
  }
  return Decide(intent, *config.routing, classified);
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

runtime::Handler MakeDecideHandler(BrainConfig config, std::shared_ptr<spdlog::logger> logger) {
  return [config, logger](runtime::HandlerContext& ctx) {
    using runtime::HandlerResult;
    const auto& m = ctx.message;
    json request = json::parse(m.payload_json, nullptr, false);
    if (request.is_discarded() || !request.is_object() || !request.contains("intent") ||
        !request["intent"].is_string()) {
      return HandlerResult::Fail("invalid_request: the decide payload needs a string intent");
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
      if (e.retryable()) return HandlerResult::Retry(std::string("classifier_unavailable: ") + e.what());
      logger->warn("decide {}: classifier failed for good: {}", m.lease.message_id, e.what());
      decided = Decide(intent, *config.routing, std::nullopt);
    }
    if (const auto* failure = std::get_if<DecideFailure>(&decided)) {
      logger->info("decide {}: {} for intent {}", m.lease.message_id, failure->reason, intent);
      return HandlerResult::Fail(failure->reason + ": " + failure->detail);
    }
    const auto& plan = std::get<Plan>(decided);
    auto result = HandlerResult::Complete(
        PlanJson(plan), intent + " -> " + plan.rule.target.Route() + " (" + plan.rule.agent_id + ", " +
                            plan.rule.model + ")");
    bus::PublishRequest execute;
    execute.service = "orchestrator";
    execute.role = "execute";
    execute.shard = m.route.shard;
    execute.tenant = m.tenant;
    execute.payload_json = ExecutePayloadJson(plan, std::chrono::system_clock::now(), input_json);
    execute.max_attempts = config.execute_max_attempts;
    execute.correlation_id = std::to_string(m.lease.message_id);
    result.publish.push_back(std::move(execute));
    result.events.push_back({0, "decided", DecisionDetail(plan, "decide")});
    return result;
  };
}

class BrainServer::Impl {
 public:
  Impl(BrainServerOptions options, BrainConfig config, std::shared_ptr<spdlog::logger> logger)
      : options_(std::move(options)),
        config_(std::move(config)),
        logger_(std::move(logger)),
        pool_(options_.database_url, "cogo-orchestrator-brain", static_cast<size_t>(options_.threads)),
        runner_(server_) {
    const auto threads = static_cast<size_t>(options_.threads);
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server_.set_payload_max_length(options_.max_body_bytes * 4);
    http::InstallJsonErrors(server_);
    server_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      http::SendJson(res, 200, R"({"status":"ok"})");
    });
    server_.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) { readiness_.Send(res, pool_); });
    server_.Post("/api/orchestrator/plan",
                 [this](const httplib::Request& req, httplib::Response& res) { PlanOnly(req, res); });
    server_.Post("/api/orchestrator/execute",
                 [this](const httplib::Request& req, httplib::Response& res) { Execute(req, res); });
    server_.Get("/api/orchestrator/state",
                [this](const httplib::Request&, httplib::Response& res) { State(res); });
    server_.Get("/api/messages/([^/]+)",
                [this](const httplib::Request& req, httplib::Response& res) { Message(req, res); });
  }

  void Start() {
    port_ = runner_.Start(options_.host, options_.port);
    logger_->info("REST on http://{}:{}/api/orchestrator ({} routing rules, classifier {})",
                  options_.host, port_, config_.routing->rules().size(),
                  config_.routing->classifier().enabled ? config_.routing->classifier().model : "off");
  }
  void Drain() { runner_.Stop(); }
  int port() const { return port_; }

 private:
  // Plans (classifying when needed) or writes the error response and returns nullopt.
  std::optional<Plan> PlanFor(const Ask& ask, httplib::Response& res) {
    if (ask.plan_json) {
      auto parsed = ParsePlanJson(*ask.plan_json);
      if (const auto* e = std::get_if<RoutingConfigError>(&parsed)) {
        http::SendError(res, 400, "invalid_plan", e->path + ": " + e->message);
        return std::nullopt;
      }
      return std::get<Plan>(std::move(parsed));
    }
    try {
      auto decided = DecideWithClassifier(config_, ask.intent, ask.payload_json, {}, nullptr);
      if (const auto* f = std::get_if<DecideFailure>(&decided)) {
        http::SendError(res, 422, f->reason, f->detail);
        return std::nullopt;
      }
      return std::get<Plan>(std::move(decided));
    } catch (const providers::ProviderError& e) {
      http::SendError(res, 503, "classifier_unavailable", e.what());
      return std::nullopt;
    }
  }

  // The policy's verdict on a plan, as the executor will judge it (spend aside).
  bool Admissible(const Plan& plan, httplib::Response& res) {
    const auto now = std::chrono::system_clock::now();
    const auto envelope = BuildAssignment(plan, now);
    const auto decision = policy::Admit(envelope, config_.policy->Lookup(envelope), {now, now},
                                        {0.0, std::numeric_limits<double>::infinity()}, now);
    if (decision.admitted()) return true;
    http::SendError(res, 422, "policy_" + std::string(policy::ReasonName(*decision.reject)), decision.detail);
    return false;
  }

  void PlanOnly(const httplib::Request& req, httplib::Response& res) {
    auto parsed = ParseAsk(req.body, false, false, options_.max_body_bytes);
    if (const auto* e = std::get_if<AskError>(&parsed)) return http::SendError(res, e->status, e->error, e->message);
    const auto plan = PlanFor(std::get<Ask>(parsed), res);
    if (!plan) return;
    json out = {{"plan", json::parse(PlanJson(*plan))},
                {"assignment", json::parse(policy::ToJson(BuildAssignment(*plan, std::chrono::system_clock::now())))}};
    http::SendJson(res, 200, out.dump());
  }

  void Execute(const httplib::Request& req, httplib::Response& res) {
    auto parsed = ParseAsk(req.body, true, true, options_.max_body_bytes);
    if (const auto* e = std::get_if<AskError>(&parsed)) return http::SendError(res, e->status, e->error, e->message);
    const auto& ask = std::get<Ask>(parsed);
    std::string key;
    if (req.has_header("Idempotency-Key")) {
      key = req.get_header_value("Idempotency-Key");
      if (!edge::ValidIdempotencyKey(key)) {
        return http::SendError(res, 400, "invalid_idempotency_key",
                               "Idempotency-Key must be 1..200 printable ASCII characters");
      }
    }
    const auto plan = PlanFor(ask, res);
    if (!plan || !Admissible(*plan, res)) return;
    bus::PublishRequest execute;
    execute.service = "orchestrator";
    execute.role = "execute";
    execute.shard = edge::ShardForTenant(ask.tenant, options_.shards);
    execute.tenant = ask.tenant;
    execute.payload_json = ExecutePayloadJson(*plan, std::chrono::system_clock::now(), ask.payload_json);
    execute.max_attempts = config_.execute_max_attempts;
    execute.idempotency_key = key;
    try {
      bus::Published published;
      pool_.With([&](pqxx::connection& conn) {
        bus::Bus bus(conn);
        pqxx::work txn(conn);
        published = bus.Publish(txn, execute);
        if (published.created) bus.AddEvents(txn, {{published.id, "decided", DecisionDetail(*plan, "api")}});
        txn.commit();
      });
      logger_->info("execute {} enqueued for tenant {} ({}){}", published.id, ask.tenant,
                    plan->rule.target.Route(), published.created ? "" : " (idempotent repeat)");
      json out = {{"ids", {published.id}}, {"created", published.created},
                  {"plan", json::parse(PlanJson(*plan))}};
      http::SendJson(res, published.created ? 202 : 200, out.dump());
    } catch (const std::exception& e) {
      logger_->error("execute failed: {}", e.what());
      http::SendError(res, 503, "unavailable", "the bus is unavailable; retry later");
    }
  }

  void State(httplib::Response& res) {
    try {
      json out;
      pool_.With([&](pqxx::connection& conn) {
        pqxx::read_transaction txn(conn);
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
      });
      out["routing"] = json::parse(config_.routing->ToJson());
      out["policy"] = json::parse(config_.policy_json, nullptr, false);
      http::SendJson(res, 200, out.dump());
    } catch (const std::exception& e) {
      logger_->error("state failed: {}", e.what());
      http::SendError(res, 503, "unavailable", "the database is unavailable");
    }
  }

  void Message(const httplib::Request& req, httplib::Response& res) {
    const int64_t id = http::ParseId(req.matches[1]);
    if (id == 0) return http::SendError(res, 404, "not_found", "no such message");
    try {
      std::optional<std::string> view;
      pool_.With([&](pqxx::connection& conn) {
        pqxx::read_transaction txn(conn);
        view = RequestViewJson(txn, id, std::nullopt);
        if (view) {
          json v = json::parse(*view);
          v["message"] = json::parse(*bus::MessageJson(txn, id));
          view = v.dump();
        }
      });
      if (!view) return http::SendError(res, 404, "not_found", "no such message");
      http::SendJson(res, 200, *view);
    } catch (const std::exception& e) {
      logger_->error("message read failed: {}", e.what());
      http::SendError(res, 503, "unavailable", "the database is unavailable");
    }
  }

  BrainServerOptions options_;
  BrainConfig config_;
  std::shared_ptr<spdlog::logger> logger_;
  db::ConnectionPool pool_;
  http::Readiness readiness_;
  httplib::Server server_;
  http::ServerRunner runner_;
  int port_ = 0;
};

BrainServer::BrainServer(BrainServerOptions options, BrainConfig config,
                         std::shared_ptr<spdlog::logger> logger)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(config), std::move(logger))) {}
BrainServer::~BrainServer() = default;
void BrainServer::Start() { impl_->Start(); }
void BrainServer::Drain() { impl_->Drain(); }
int BrainServer::port() const { return impl_->port(); }

}  // namespace cogo::orchestrator
