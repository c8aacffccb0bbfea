#include "cogo/orchestrator/upgrade.h"

#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include <map>
#include <thread>

#include "cogo/config/files.h"
#include "cogo/config/json_reader.h"
#include "cogo/db/pool.h"
#include "cogo/orchestrator/replay.h"
#include "cogo/orchestrator/routing_eval.h"
#include "cogo/orchestrator/version_store.h"
#include "cogo/runtime/worker_component.h"

namespace cogo::orchestrator {
namespace {

using nlohmann::json;
using runtime::HandlerResult;

// Evaluation sets are named, not pathed: a run's parameters must not read arbitrary files.
constexpr config::NameRule kSetName{"evaluation set", 64, true};

// Why a step failed: its reason (unknown_version, a refusal's reason) and one line of detail.
struct StepFailure {
  std::string reason;
  std::string detail;
};

// $1 the replay step's message id: each request it published (orchestrator/execute, keyed
// upgrade-replay:<run>:<item>:<version>) with its hand-off to the agent's route, as
// decision_outcomes (sql/016) judges an execution: pending while a message is queued or running,
// failed when one failed, was dead-lettered or cancelled; latency from the first creation to
// the last end; queue wait added up over its messages; cost from message_usage; the agent's
// result. Both lookups are indexed (agent_messages_parent and the primary key).
constexpr const char* kReplayedRequests = R"SQL(
SELECT e.idempotency_key, x.outcome, x.latency_ms, x.queue_wait_ms,
       coalesce((SELECT sum(u.cost_usd) FROM message_usage u WHERE u.message_id = ANY (x.ids)), 0)::float8,
       x.result
FROM agent_messages e
CROSS JOIN LATERAL (
  SELECT CASE WHEN bool_or(m.status IN ('queued', 'running')) THEN 'pending'
              WHEN bool_or(m.status IN ('failed', 'dead', 'cancelled')) THEN 'failed'
              ELSE 'done' END AS outcome,
         coalesce(extract(epoch FROM max(m.finished_at) - min(m.created_at)) * 1000, 0)::float8 AS latency_ms,
         coalesce(extract(epoch FROM sum(m.started_at - m.created_at)) * 1000, 0)::float8 AS queue_wait_ms,
         coalesce((array_agg(m.result::text ORDER BY m.id DESC)
                   FILTER (WHERE m.id <> e.id AND m.result IS NOT NULL))[1], '') AS result,
         array_agg(m.id) AS ids
  FROM agent_messages m WHERE m.id = e.id OR m.parent_id = e.id) x
WHERE e.parent_id = $1 AND e.idempotency_key LIKE 'upgrade-replay:%')SQL";

struct Step {
  std::string action;
  std::string agent_id;
  std::string candidate;  // replay, evaluate, measure; `version` of canary, promote, rollback
  std::string baseline;
  std::optional<double> weight;
  std::optional<int64_t> min_decisions;
  std::optional<int64_t> latency_slo_ms;
  std::string set;
  json replay;  // evaluate: the replay step's output
  json why;  // promote, rollback: what led there (gate verdicts, a person's review)
};

Step ReadStep(const std::string& payload_json) {
  const auto doc = config::JsonDocument::Parse(payload_json, {16, true});
  const auto o = doc.root().AsObject();
  Step s;
  s.action = o.String("action");
  s.agent_id = o.Name("agentId", kAgentIdName);
  if (s.action == "replay" || s.action == "evaluate" || s.action == "measure") {
    s.candidate = o.Name("candidate", kVersionName);
    s.baseline = o.Name("baseline", kVersionName);
  } else {
    s.candidate = o.Name("version", kVersionName);
  }
  // Optional parameters arrive as null when the run was started without them.
  if (s.action == "replay") {
    if (const auto set = o.Optional("set")) s.set = set->AsName(kSetName);
  } else if (s.action == "evaluate") {
    s.replay = json::parse(o.Object("replay").value().Dump());
    if (const auto slo = o.Optional("latencySloMs")) s.latency_slo_ms = slo->AsInt(1, 3600000);
  } else if (s.action == "canary") {
    if (const auto weight = o.Optional("weight")) s.weight = weight->AsDouble(config::DoubleRange::Between(0, 100));
  } else if (s.action == "measure") {
    if (const auto n = o.Optional("minDecisions")) s.min_decisions = n->AsInt(1, 1000000);
    if (const auto slo = o.Optional("latencySloMs")) s.latency_slo_ms = slo->AsInt(1, 3600000);
  } else if (s.action == "promote" || s.action == "rollback") {
    if (const auto why = o.Optional("why")) s.why = json::parse(why->Dump());
  } else {
    o.FailAt("action", config::JsonReason::invalid_value, "replay, evaluate, canary, measure, promote or rollback");
  }
  o.Finish();
  return s;
}

// The run a step message belongs to (its correlation id is wf:<run id>), 0 when none.
int64_t RunOf(const bus::ClaimedMessage& m) {
  const std::string& c = m.correlation_id;
  if (c.rfind("wf:", 0) != 0) return 0;
  try {
    return std::stoll(c.substr(3));
  } catch (const std::exception&) {
    return 0;
  }
}

// Why a promotion or rollback happened, in one line for agent_version_events: a person's
// review, else the gate that decided it: the one that passed for a promotion, the one that
// failed (and its failed checks) for a rollback.
std::string StepReason(const json& why, int64_t run, const std::string& what) {
  std::string reason = "upgrade run " + std::to_string(run) + " " + what;
  if (!why.is_object()) return reason;
  if (why.contains("review") && why["review"].is_object()) {
    const auto& r = why["review"];
    const auto text = [&](const char* key, const char* fallback) {
      return r.contains(key) && r[key].is_string() ? r[key].get<std::string>() : std::string(fallback);
    };
    const auto note = text("reason", "");
    return reason + ": " + text("action", "review") + " by " + text("by", "a person") + (note.empty() ? "" : ": " + note);
  }
  const bool promoted = what == "promoted";
  for (const char* gate : {"liveGate", "enough", "offlineGate"}) {
    if (!why.contains(gate) || !why[gate].is_object()) continue;
    const bool passed = why[gate].value("verdict", "") == "pass";
    if (passed != promoted) continue;
    if (passed) return reason + ": " + gate + " passed";
    std::string failed;
    for (const auto& check : why[gate].value("checks", json::array())) {
      if (check.value("ok", true)) continue;
      failed += (failed.empty() ? "" : ", ") + check.value("path", std::string("?"));
    }
    return reason + ": " + gate + " failed" + (failed.empty() ? "" : " (" + failed + ")");
  }
  return reason;
}

class Upgrader {
 public:
  Upgrader(BrainConfig config, UpgradeOptions options, std::string database_url, std::shared_ptr<spdlog::logger> logger)
      : config_(std::move(config)), options_(std::move(options)),
        pool_(std::make_shared<db::ConnectionPool>(std::move(database_url), "cogo-brain-upgrade", 2)),
        logger_(std::move(logger)) {}

  HandlerResult Handle(runtime::HandlerContext& ctx) {
    const auto& m = ctx.message;
    if (m.tenant != options_.operator_tenant) {
      return HandlerResult::Fail("forbidden_tenant", "upgrade steps act only for runs of the operator tenant");
    }
    Step step;
    try {
      step = ReadStep(m.payload_json);
    } catch (const config::JsonError& e) {
      return HandlerResult::Fail("invalid_step", e.what());
    }
    const int64_t run = RunOf(m);
    const Actor actor{"workflow:" + std::to_string(run), "", m.lease.message_id};
    std::variant<json, StepFailure> outcome;  // the step's output, or why it failed
    std::vector<bus::PublishRequest> publish;
    if (step.action == "replay") outcome = Replay(step, m, run, publish);
    if (step.action == "evaluate") {
      const int64_t replay = step.replay.value("messageId", int64_t{0});
      if (const int pending = AwaitReplay(replay, ctx.stop); pending > 0) {
        logger_->info("upgrade evaluate of {} {} (run {}): {} replayed requests still running", step.agent_id,
                      step.candidate, run, pending);
        return HandlerResult::Retry("replay_pending", std::to_string(pending) + " replayed requests still running",
                                    std::chrono::seconds(1));
      }
      outcome = Evaluate(step, run);
    }
    if (step.action == "measure") outcome = Measure(step);
    VersionOp op;
    op.agent_id = step.agent_id;
    op.version = step.candidate;
    if (step.action == "canary") {
      op.action = VersionAction::canary;
      op.weight = step.weight.value_or(options_.default_canary_weight);
      outcome = Change(op, {actor.name, "canary of upgrade run " + std::to_string(run), actor.message_id}, "");
    }
    if (step.action == "promote") {
      op.action = VersionAction::promote;
      outcome = Change(op, {actor.name, StepReason(step.why, run, "promoted"), actor.message_id}, "already_active");
    }
    if (step.action == "rollback") {
      op.action = VersionAction::rollback;
      outcome = Change(op, {actor.name, StepReason(step.why, run, "rolled back"), actor.message_id}, "version_retired");
    }
    if (const auto* failure = std::get_if<StepFailure>(&outcome)) {
      auto result = HandlerResult::Fail(failure->reason, failure->detail);
      logger_->warn("upgrade {} of {} {} (run {}): {}", step.action, step.agent_id, step.candidate, run, result.error());
      return result;
    }
    const auto& output = std::get<json>(outcome);
    auto result = HandlerResult::Complete(output.dump(), "upgrade " + step.action + " " + step.agent_id + " " + step.candidate);
    result.publish = std::move(publish);
    result.events.push_back({0, "upgrade_" + step.action, json{{"agent_id", step.agent_id}, {"version", step.candidate},
                                                              {"run_id", run}, {"output", output}}.dump()});
    logger_->info("upgrade {} of {} {} (run {}) done", step.action, step.agent_id, step.candidate, run);
    return result;
  }

 private:
  // An operation through RunVersionOp; `settled` is the refusal that means a re-run found the
  // state the first run made (the step then succeeds with no changes).
  std::variant<json, StepFailure> Change(const VersionOp& op, const Actor& actor, const std::string& settled) {
    OpResult result;
    pool_->With([&](pqxx::connection& conn) { result = RunVersionOp(conn, op, actor, nullptr, nullptr); });
    if (const auto* refusal = std::get_if<OpRefusal>(&result)) {
      if (refusal->reason == settled) return json{{"agentId", op.agent_id}, {"version", op.version}, {"changes", json::array()}};
      return StepFailure{refusal->reason, refusal->message};
    }
    if (config_.versions) config_.versions->Invalidate();
    json out = {{"agentId", op.agent_id}, {"version", op.version},
                {"changes", json::parse(ChangesJson(std::get<std::vector<VersionChange>>(result)))}};
    if (op.action == VersionAction::canary) out["weight"] = op.weight;
    return out;
  }

  std::vector<AgentVersion> Versions(const std::string& agent_id) {
    std::vector<AgentVersion> out;
    pool_->With([&](pqxx::connection& conn) {
      pqxx::read_transaction txn(conn);
      out = LoadVersions(txn, agent_id);
    });
    return out;
  }

  static const AgentVersion* Find(const std::vector<AgentVersion>& versions, const std::string& version) {
    for (const auto& v : versions) {
      if (v.version == version) return &v;
    }
    return nullptr;
  }

  std::variant<std::vector<EvalItem>, StepFailure> ReadSet(const std::string& set) {
    if (set.empty()) return std::vector<EvalItem>{};
    try {
      return ParseEvalSet(config::ReadFile(options_.eval_dir + "/" + set + ".json"));
    } catch (const std::exception& e) {
      return StepFailure{"evaluation_set", e.what()};
    }
  }

  // The set's requests, each decided once through the decide path; the items the agent serves
  // are published to (orchestrator, execute) twice, once pinned to each version, as children of
  // this step's message (in the transaction that completes it) correlated to the run: the
  // executor and the agent's workers run them as they run any request, and cancelling the run
  // cancels them. The output names this message (the evaluate step finds the requests by it)
  // and how each item was routed.
  std::variant<json, StepFailure> Replay(const Step& step, const bus::ClaimedMessage& m, int64_t run,
                                         std::vector<bus::PublishRequest>& publish) {
    const auto versions = Versions(step.agent_id);
    const AgentVersion* candidate = Find(versions, step.candidate);
    const AgentVersion* baseline = Find(versions, step.baseline);
    if (candidate == nullptr || baseline == nullptr) {
      return StepFailure{"unknown_version", step.agent_id + " has no version " + (candidate == nullptr ? step.candidate : step.baseline)};
    }
    auto read = ReadSet(step.set);
    if (const auto* failure = std::get_if<StepFailure>(&read)) return *failure;
    const auto& items = std::get<std::vector<EvalItem>>(read);
    const auto now = std::chrono::system_clock::now();
    json routed = json::array();
    int replayed = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      DecideResult decided;
      try {
        decided = DecideWithClassifier(config_, items[i].intent, items[i].payload_json, {}, nullptr);
      } catch (const providers::ProviderError& e) {
        return StepFailure{"classifier_unavailable", e.what()};
      }
      if (const auto* failure = std::get_if<DecideFailure>(&decided)) {
        routed.push_back({{"intent", ""}, {"agent_id", ""}, {"refused", failure->reason}});
        continue;
      }
      const auto& plan = std::get<Plan>(decided);
      routed.push_back({{"intent", plan.rule.intent}, {"agent_id", plan.rule.agent_id}, {"refused", ""}});
      if (plan.rule.agent_id != step.agent_id || !plan.rule.workflow.empty()) continue;
      ++replayed;
      for (const AgentVersion* v : {candidate, baseline}) {
        auto execute = ExecuteMessage(WithVersion(plan, *v), now, items[i].payload_json, m.tenant, m.route.shard,
                                      config_.execute_max_attempts);
        execute.idempotency_key = ReplayKey(run, i, v->version);
        execute.correlation_id = m.correlation_id;
        publish.push_back(std::move(execute));
      }
    }
    return json{{"agentId", step.agent_id}, {"set", step.set.empty() ? json(nullptr) : json(step.set)},
                {"messageId", m.lease.message_id}, {"items", items.size()}, {"replayed", replayed}, {"routed", routed}};
  }

  static std::string ReplayKey(int64_t run, size_t item, const std::string& version) {
    return "upgrade-replay:" + std::to_string(run) + ":" + std::to_string(item) + ":" + version;
  }

  // The executions the replay step `message_id` published, by idempotency key.
  std::map<std::string, ReplayedRequest> Replayed(int64_t message_id) {
    std::map<std::string, ReplayedRequest> out;
    pool_->With([&](pqxx::connection& conn) {
      pqxx::read_transaction txn(conn);
      for (const auto& row : txn.exec_params(kReplayedRequests, message_id)) {
        const auto status = row[1].as<std::string>();
        out[row[0].as<std::string>()] = {status == "pending" ? ReplayedRequest::Status::pending
                                         : status == "done"  ? ReplayedRequest::Status::done
                                                             : ReplayedRequest::Status::failed,
                                         row[2].as<double>(), row[3].as<double>(), row[4].as<double>(),
                                         row[5].as<std::string>()};
      }
    });
    return out;
  }

  // Waits (polling, up to options_.replay_wait or a stop) for the replayed requests to end;
  // returns how many are still running.
  int AwaitReplay(int64_t message_id, std::stop_token stop) {
    const auto until = std::chrono::steady_clock::now() + options_.replay_wait;
    for (;;) {
      int pending = 0;
      for (const auto& [key, r] : Replayed(message_id)) pending += r.status == ReplayedRequest::Status::pending;
      if (pending == 0 || stop.stop_requested() || std::chrono::steady_clock::now() >= until) return pending;
      std::this_thread::sleep_for(options_.replay_poll);
    }
  }

  // Both versions' replays scored and compared, with each version's plans checked against the
  // policy as the executor will: what the offline gate asserts.
  std::variant<json, StepFailure> Evaluate(const Step& step, int64_t run) {
    const auto versions = Versions(step.agent_id);
    const AgentVersion* candidate = Find(versions, step.candidate);
    const AgentVersion* baseline = Find(versions, step.baseline);
    if (candidate == nullptr || baseline == nullptr) {
      return StepFailure{"unknown_version", step.agent_id + " has no version " + (candidate == nullptr ? step.candidate : step.baseline)};
    }
    const std::string set = step.replay.value("set", json()).is_string() ? step.replay["set"].get<std::string>() : "";
    auto read = ReadSet(set);
    if (const auto* failure = std::get_if<StepFailure>(&read)) return *failure;
    const auto& items = std::get<std::vector<EvalItem>>(read);
    const json routed = step.replay.value("routed", json::array());
    if (routed.size() != items.size()) return StepFailure{"evaluation_set", set + " changed since the replay"};
    std::vector<EvalOutcome> outcomes;
    for (const auto& r : routed) {
      outcomes.push_back({r.value("intent", ""), r.value("agent_id", ""), r.value("refused", "")});
    }
    const auto executions = Replayed(step.replay.value("messageId", int64_t{0}));
    const auto now = std::chrono::system_clock::now();
    const auto judge = [&](const AgentVersion& v) {
      std::vector<std::optional<ReplayedRequest>> replayed(items.size());
      for (size_t i = 0; i < items.size(); ++i) {
        if (const auto it = executions.find(ReplayKey(run, i, v.version)); it != executions.end()) replayed[i] = it->second;
      }
      const auto score = ScoreReplay(items, outcomes, replayed);
      const auto refusal = CheckVersion(v, *config_.routing, *config_.policy, now);
      const auto optional = [](const std::optional<double>& x) { return x ? json(*x) : json(nullptr); };
      // Nothing replayed: a version the executor would refuse fails everything it is given.
      const std::optional<double> failure_rate =
          score.requests > 0 ? score.failure_rate : std::optional<double>(refusal ? 1.0 : 0.0);
      json figures = {{"version", v.version}, {"model", v.model}, {"admitted", !refusal.has_value()},
                      {"max_cost_usd", v.budget.max_cost_usd}, {"ttl_ms", v.ttl.count()},
                      {"requests", score.requests}, {"done", score.done}, {"failed", score.failed},
                      {"correct", score.correct}, {"failure_rate", optional(failure_rate)},
                      {"quality", optional(score.quality)}, {"latency_p50_ms", optional(score.latency_p50_ms)},
                      {"latency_p90_ms", optional(score.latency_p90_ms)},
                      {"queue_wait_p50_ms", optional(score.queue_wait_p50_ms)}, {"cost_usd", score.cost_usd},
                      {"cost_per_request_usd", optional(score.cost_per_request_usd)}};
      if (refusal) figures["refusal"] = refusal->reason + ": " + refusal->message;
      if (!items.empty()) figures["routing"] = json::parse(EvalScoreJson(ScoreRouting(items, outcomes), items, outcomes));
      return figures;
    };
    json out = {{"agentId", step.agent_id}, {"set", set.empty() ? json(nullptr) : json(set)},
                {"candidate", judge(*candidate)}, {"baseline", judge(*baseline)}};
    const int64_t slo = step.latency_slo_ms.value_or(options_.default_latency_slo_ms);
    AddComparison(out, slo);
    return out;
  }

  // The comparison of out["candidate"] with out["baseline"], as the gates read it.
  static void AddComparison(json& out, int64_t latency_slo_ms) {
    const auto figures = [](const json& f) {
      const auto number = [&](const char* key) {
        const auto it = f.find(key);
        return it == f.end() || it->is_null() ? std::nullopt : std::optional<double>(it->get<double>());
      };
      return VersionFigures{number("failure_rate"), number("quality"), number("latency_p90_ms"),
                            number("queue_wait_p50_ms"), number("cost_per_request_usd")};
    };
    const auto c = CompareVersions(figures(out["candidate"]), figures(out["baseline"]), double(latency_slo_ms));
    out["failure_rate_delta"] = c.failure_rate_delta;
    out["quality_delta"] = c.quality_delta;
    out["latency_within_slo"] = c.latency_within_slo;
    out["latencySloMs"] = latency_slo_ms;
    out["queue_wait_within_baseline"] = c.queue_wait_within_baseline;
    out["cost_within_baseline"] = c.cost_within_baseline;
  }

  // Live: both versions' decisions since the canary began, and what the live gate compares. A
  // baseline with nothing judged in the window compares as equal to the candidate.
  std::variant<json, StepFailure> Measure(const Step& step) {
    const auto versions = Versions(step.agent_id);
    const AgentVersion* candidate = Find(versions, step.candidate);
    if (candidate == nullptr || Find(versions, step.baseline) == nullptr) {
      return StepFailure{"unknown_version", step.agent_id + " lacks " + step.candidate + " or " + step.baseline};
    }
    json cand;
    json base;
    std::string since;
    pool_->With([&](pqxx::connection& conn) {
      pqxx::read_transaction txn(conn);
      since = txn.exec_params1("SELECT since::text FROM agent_versions WHERE agent_id = $1 AND version = $2",
                               step.agent_id, step.candidate)[0].as<std::string>();
      cand = json::parse(VersionFiguresJson(txn, step.agent_id, step.candidate, since));
      base = json::parse(VersionFiguresJson(txn, step.agent_id, step.baseline, since));
    });
    const int64_t min_decisions = step.min_decisions.value_or(options_.default_min_decisions);
    json out = {{"agentId", step.agent_id},
                {"since", since},
                {"candidate", cand},
                {"baseline", base},
                {"enough", cand.value("judged", int64_t{0}) >= min_decisions},
                {"minDecisions", min_decisions}};
    AddComparison(out, step.latency_slo_ms.value_or(options_.default_latency_slo_ms));
    return out;
  }

  BrainConfig config_;
  UpgradeOptions options_;
  std::shared_ptr<db::ConnectionPool> pool_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace

runtime::Handler MakeUpgradeHandler(BrainConfig config, UpgradeOptions options, std::string database_url,
                                    std::shared_ptr<spdlog::logger> logger) {
  auto upgrader = std::make_shared<Upgrader>(std::move(config), std::move(options), std::move(database_url),
                                             std::move(logger));
  return [upgrader](runtime::HandlerContext& ctx) { return upgrader->Handle(ctx); };
}

void AddUpgradeWorker(const BrainConfig& config, const UpgradeOptions& options, const runtime::WorkerOptions& base,
                      runtime::DaemonContext& ctx, std::vector<std::unique_ptr<runtime::Component>>& components) {
  runtime::WorkerOptions worker = base;
  worker.service = "orchestrator";
  worker.role = kUpgradeRole;
  worker.shards = {0};
  worker.concurrency = 2;
  components.push_back(runtime::MakeWorkerComponent(
      worker, MakeUpgradeHandler(config, options, ctx.options.database_url, ctx.logger), ctx));
}

}  // namespace cogo::orchestrator
