#include "cogo/orchestrator/upgrade.h"

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <limits>

#include "cogo/config/files.h"
#include "cogo/config/json_reader.h"
#include "cogo/db/pool.h"
#include "cogo/orchestrator/routing_eval.h"
#include "cogo/orchestrator/version_store.h"
#include "cogo/policy/admit.h"
#include "cogo/runtime/worker_component.h"

namespace cogo::orchestrator {
namespace {

using nlohmann::json;
using runtime::HandlerResult;

// Evaluation sets are named, not pathed: a run's parameters must not read arbitrary files.
constexpr config::NameRule kSetName{"evaluation set", 64, true};

struct Step {
  std::string action;
  std::string agent_id;
  std::string candidate;  // evaluate, measure; `version` of canary, promote, rollback
  std::string baseline;
  std::optional<double> weight;
  std::optional<int64_t> min_decisions;
  std::optional<int64_t> latency_slo_ms;
  std::string set;
  json why;  // promote, rollback: what led there (gate verdicts, a person's review)
};

Step ReadStep(const std::string& payload_json) {
  const auto doc = config::JsonDocument::Parse(payload_json, {16, true});
  const auto o = doc.root().AsObject();
  Step s;
  s.action = o.String("action");
  s.agent_id = o.Name("agentId", kAgentIdName);
  if (s.action == "evaluate" || s.action == "measure") {
    s.candidate = o.Name("candidate", kVersionName);
    s.baseline = o.Name("baseline", kVersionName);
  } else {
    s.candidate = o.Name("version", kVersionName);
  }
  // Optional parameters arrive as null when the run was started without them.
  if (s.action == "evaluate") {
    if (const auto set = o.Optional("set")) s.set = set->AsName(kSetName);
  } else if (s.action == "canary") {
    if (const auto weight = o.Optional("weight")) s.weight = weight->AsDouble(config::DoubleRange::Between(0, 100));
  } else if (s.action == "measure") {
    if (const auto n = o.Optional("minDecisions")) s.min_decisions = n->AsInt(1, 1000000);
    if (const auto slo = o.Optional("latencySloMs")) s.latency_slo_ms = slo->AsInt(1, 3600000);
  } else if (s.action == "promote" || s.action == "rollback") {
    if (const auto why = o.Optional("why")) s.why = json::parse(why->Dump());
  } else {
    o.FailAt("action", config::JsonReason::invalid_value, "evaluate, canary, measure, promote or rollback");
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

double Number(const json& figures, const char* key, double fallback) {
  const auto it = figures.find(key);
  return it == figures.end() || it->is_null() ? fallback : it->get<double>();
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
      return HandlerResult::Fail("forbidden_tenant: upgrade steps act only for runs of the operator tenant");
    }
    Step step;
    try {
      step = ReadStep(m.payload_json);
    } catch (const config::JsonError& e) {
      return HandlerResult::Fail(std::string("invalid_step: ") + e.what());
    }
    const int64_t run = RunOf(m);
    const Actor actor{"workflow:" + std::to_string(run), "", m.lease.message_id};
    std::variant<json, std::string> outcome;  // the step's output, or why it failed
    if (step.action == "evaluate") outcome = Evaluate(step);
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
    if (const auto* error = std::get_if<std::string>(&outcome)) {
      logger_->warn("upgrade {} of {} {} (run {}): {}", step.action, step.agent_id, step.candidate, run, *error);
      return HandlerResult::Fail(*error);
    }
    const auto& output = std::get<json>(outcome);
    auto result = HandlerResult::Complete(output.dump(), "upgrade " + step.action + " " + step.agent_id + " " + step.candidate);
    result.events.push_back({0, "upgrade_" + step.action, json{{"agent_id", step.agent_id}, {"version", step.candidate},
                                                              {"run_id", run}, {"output", output}}.dump()});
    logger_->info("upgrade {} of {} {} (run {}) done", step.action, step.agent_id, step.candidate, run);
    return result;
  }

 private:
  // An operation through RunVersionOp; `settled` is the refusal that means a re-run found the
  // state the first run made (the step then succeeds with no changes).
  std::variant<json, std::string> Change(const VersionOp& op, const Actor& actor, const std::string& settled) {
    OpResult result;
    pool_->With([&](pqxx::connection& conn) { result = RunVersionOp(conn, op, actor, nullptr, nullptr); });
    if (const auto* refusal = std::get_if<OpRefusal>(&result)) {
      if (refusal->reason == settled) return json{{"agentId", op.agent_id}, {"version", op.version}, {"changes", json::array()}};
      return refusal->reason + ": " + refusal->message;
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

  // Offline: would the executor admit each version's plans, and how does the labelled set fare
  // through the decide path with each version serving the agent's requests?
  std::variant<json, std::string> Evaluate(const Step& step) {
    const auto versions = Versions(step.agent_id);
    const AgentVersion* candidate = Find(versions, step.candidate);
    const AgentVersion* baseline = Find(versions, step.baseline);
    if (candidate == nullptr || baseline == nullptr) {
      return "unknown_version: " + step.agent_id + " has no version " + (candidate == nullptr ? step.candidate : step.baseline);
    }
    std::vector<EvalItem> items;
    if (!step.set.empty()) {
      try {
        items = ParseEvalSet(config::ReadFile(options_.eval_dir + "/" + step.set + ".json"));
      } catch (const std::exception& e) {
        return std::string("evaluation_set: ") + e.what();
      }
    }
    // Decided once; the versions only change what serves the agent's plans.
    std::vector<std::optional<Plan>> plans;
    std::vector<std::string> refusals;
    for (const auto& item : items) {
      try {
        auto decided = DecideWithClassifier(config_, item.intent, item.payload_json, {}, nullptr);
        if (auto* plan = std::get_if<Plan>(&decided)) {
          plans.emplace_back(std::move(*plan));
          refusals.emplace_back();
        } else {
          plans.emplace_back();
          refusals.push_back(std::get<DecideFailure>(decided).reason);
        }
      } catch (const providers::ProviderError& e) {
        return std::string("classifier_unavailable: ") + e.what();
      }
    }
    const auto now = std::chrono::system_clock::now();
    const auto judge = [&](const AgentVersion& v) {
      const auto refusal = CheckVersion(v, *config_.routing, *config_.policy, now);
      std::vector<EvalOutcome> outcomes;
      int served = 0;
      int refused = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!plans[i]) {
          outcomes.push_back({"", "", refusals[i]});
          continue;
        }
        EvalOutcome out{plans[i]->rule.intent, plans[i]->rule.agent_id, ""};
        if (plans[i]->rule.agent_id == v.agent_id) {
          ++served;
          const auto envelope = BuildAssignment(WithVersion(*plans[i], v), now);
          const auto admitted = policy::Admit(envelope, config_.policy->Lookup(envelope), {now, now},
                                              {0.0, std::numeric_limits<double>::infinity()}, now);
          if (!admitted.admitted()) {
            out.refused = "policy_" + std::string(policy::ReasonName(*admitted.reject));
            ++refused;
          }
        }
        outcomes.push_back(std::move(out));
      }
      const auto score = ScoreRouting(items, outcomes);
      json figures = {{"version", v.version}, {"model", v.model}, {"admitted", !refusal.has_value()},
                      {"max_cost_usd", v.budget.max_cost_usd}, {"ttl_ms", v.ttl.count()},
                      {"requests", served},
                      {"failure_rate", served > 0 ? double(refused) / served : (refusal ? 1.0 : 0.0)},
                      {"quality", items.empty() ? json(nullptr) : json(score.accuracy)}};
      if (refusal) figures["refusal"] = refusal->reason + ": " + refusal->message;
      if (!items.empty()) figures["evaluation"] = json::parse(EvalScoreJson(score, items, outcomes));
      return figures;
    };
    json out = {{"agentId", step.agent_id}, {"set", step.set.empty() ? json(nullptr) : json(step.set)},
                {"candidate", judge(*candidate)}, {"baseline", judge(*baseline)}};
    out["quality_delta"] = items.empty() ? 0.0
                                         : out["candidate"]["quality"].get<double>() - out["baseline"]["quality"].get<double>();
    return out;
  }

  // Live: both versions' decisions since the canary began, and what the live gate compares. A
  // baseline with nothing judged in the window compares as equal to the candidate.
  std::variant<json, std::string> Measure(const Step& step) {
    const auto versions = Versions(step.agent_id);
    const AgentVersion* candidate = Find(versions, step.candidate);
    if (candidate == nullptr || Find(versions, step.baseline) == nullptr) {
      return "unknown_version: " + step.agent_id + " lacks " + step.candidate + " or " + step.baseline;
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
    const int64_t slo = step.latency_slo_ms.value_or(options_.default_latency_slo_ms);
    const double cand_failures = Number(cand, "failure_rate", 0);
    const double cand_quality = Number(cand, "quality", 0);
    const double cand_cost = Number(cand, "cost_per_request_usd", 0);
    const double base_cost = Number(base, "cost_per_request_usd", cand_cost);
    return json{{"agentId", step.agent_id},
                {"since", since},
                {"candidate", cand},
                {"baseline", base},
                {"enough", cand.value("judged", int64_t{0}) >= min_decisions},
                {"minDecisions", min_decisions},
                {"failure_rate_delta", cand_failures - Number(base, "failure_rate", cand_failures)},
                {"quality_delta", cand_quality - Number(base, "quality", cand_quality)},
                {"latency_within_slo", Number(cand, "latency_p90_ms", 0) <= double(slo)},
                {"latencySloMs", slo},
                // 20 % over the baseline's cost per request, or a tenth of a cent, is still in.
                {"cost_within_baseline", cand_cost <= std::max(base_cost * 1.2, base_cost + 0.001)}};
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
