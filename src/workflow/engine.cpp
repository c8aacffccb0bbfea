#include "cogo/workflow/engine.h"

#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include <filesystem>
#include <random>

#include "cogo/bus/bus.h"
#include "cogo/db/connection.h"
#include "cogo/runtime/worker_component.h"
#include "cogo/workflow/transition.h"
#include "workflow/statements.h"

namespace cogo::workflow {
namespace {

using nlohmann::json;

std::optional<std::string> Text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}

json JsonOrNull(const pqxx::field& f) {
  if (f.is_null()) return json();
  return json::parse(f.as<std::string>(), nullptr, false);
}

std::string Correlation(int64_t run_id) { return "wf:" + std::to_string(run_id); }

// Loads what Transition needs about a run whose row the transaction has locked.
RunState LoadRun(pqxx::transaction_base& txn, int64_t run_id, const pqxx::row& row) {
  RunState run;
  run.id = run_id;
  run.tenant = row[0].as<std::string>();
  run.status = row[3].as<std::string>();
  run.parameters = json::parse(row[4].as<std::string>());
  run.cursor = Text(row[5]).value_or("");
  run.cursor_activation = row[6].as<int>();
  if (!row[7].is_null()) run.max_cost_usd = row[7].as<double>();
  if (!row[8].is_null()) run.max_tokens = row[8].as<int64_t>();
  for (const auto& s : txn.exec_params(sql::kLatestSteps, run_id)) {
    StepState step{s[1].as<int>(), s[2].as<std::string>(), JsonOrNull(s[3]), s[4].as<std::string>(),
                   s[5].as<int64_t>()};
    run.total_activations += step.activation;
    run.steps.emplace(s[0].as<std::string>(), std::move(step));
  }
  const auto budget = txn.exec_params1(sql::kRunBudget, run_id);
  run.spent_usd = budget[0].as<double>();
  run.spent_tokens = budget[1].as<int64_t>();
  run.reserved_usd = budget[2].as<double>();
  run.reserved_tokens = budget[3].as<int64_t>();
  for (const auto& s : txn.exec_params(sql::kOpenSignals, run_id)) {
    run.signals.push_back({s[0].as<int64_t>(), s[1].as<std::string>(), json::parse(s[2].as<std::string>()),
                           s[3].as<int64_t>()});
  }
  return run;
}

// The event an engine message stands for. Throws std::invalid_argument on a malformed payload.
Event ReadEvent(pqxx::transaction_base& txn, const json& payload) {
  const auto kind = payload.at("kind").get<std::string>();
  if (kind == "start") return StartEvent{};
  if (kind == "signal") return SignalEvent{payload.at("signal_id").get<int64_t>()};
  if (kind == "timer") {
    const auto purpose = payload.at("purpose").get<std::string>();
    return TimerEvent{payload.at("node").get<std::string>(), payload.at("activation").get<int>(),
                      purpose == "retry_backoff" ? TimerPurpose::retry_backoff : TimerPurpose::wait_timeout};
  }
  if (kind == "step_finished") {
    StepFinishedEvent e;
    e.node = payload.at("node").get<std::string>();
    e.activation = payload.at("activation").get<int>();
    const auto m = txn.exec_params1(sql::kStepMessage, payload.at("message_id").get<int64_t>());
    e.message_status = m[0].as<std::string>();
    e.result = JsonOrNull(m[1]);
    e.error = m[2].as<std::string>();
    e.spent_usd = m[3].as<double>();
    e.spent_tokens = m[4].as<int64_t>();
    return e;
  }
  throw std::invalid_argument("unknown workflow message kind " + kind);
}

// Writes one transition's actions; `cause` is the engine message (parent of what it publishes,
// owner of the audit rows).
class ActionWriter {
 public:
  ActionWriter(pqxx::transaction_base& txn, bus::Bus& bus, const RunState& run, int64_t cause)
      : txn_(txn), bus_(bus), run_(run), cause_(cause) {}

  void operator()(const StartStep& a) {
    std::optional<int64_t> message_id;
    // A step that failed before publishing (template, budget) has no route.
    if (!a.service.empty()) {
      bus::PublishRequest request;
      request.service = a.service;
      request.role = a.role;
      request.tenant = run_.tenant;
      request.payload_json = a.input.dump();
      request.max_attempts = a.max_attempts;
      // A transition written twice could not publish the step twice either.
      request.idempotency_key = Correlation(run_.id) + ":" + a.node + ":" + std::to_string(a.activation);
      request.correlation_id = Correlation(run_.id);
      request.parent_id = cause_;
      message_id = bus_.Publish(txn_, request).id;
    }
    txn_.exec_params0(sql::kInsertStep, run_.id, a.node, a.activation, NodeTypeName(a.type), a.status,
                      a.input.is_null() ? std::optional<std::string>() : a.input.dump(), message_id,
                      a.reserved_usd, a.reserved_tokens);
  }
  void operator()(const FinishStep& a) {
    txn_.exec_params0(sql::kFinishStep, run_.id, a.node, a.activation, a.status,
                      a.output.is_null() ? std::optional<std::string>() : a.output.dump(),
                      a.error.empty() ? std::optional<std::string>() : a.error);
  }
  void operator()(const ScheduleTimer& a) {
    bus::PublishRequest request;
    request.service = kEngineService;
    request.role = kEngineRole;
    request.tenant = run_.tenant;
    request.payload_json = json{{"kind", "timer"}, {"run_id", run_.id}, {"node", a.node},
                                {"activation", a.activation}, {"purpose", TimerPurposeName(a.purpose)}}
                               .dump();
    request.max_attempts = 10;
    request.idempotency_key = "wf-timer:" + std::to_string(run_.id) + ":" + a.node + ":" +
                              std::to_string(a.activation) + ":" + TimerPurposeName(a.purpose);
    request.correlation_id = Correlation(run_.id);
    request.delay_ms = std::max<int64_t>(a.delay.count(), 1);
    (void)bus_.Publish(txn_, request);
  }
  void operator()(const ConsumeSignal& a) {
    txn_.exec_params0(sql::kConsumeSignal, a.signal_id, a.node + "#" + std::to_string(a.activation));
  }
  void operator()(const MoveCursor& a) {
    txn_.exec_params0(sql::kMoveCursor, run_.id, a.node, a.activation, a.status);
  }
  void operator()(const FinishRun& a) {
    txn_.exec_params0(sql::kFinishRun, run_.id, a.status,
                      a.reason.empty() ? std::optional<std::string>() : a.reason);
  }
  void operator()(const Audit& a) {
    json detail = a.detail.is_object() ? a.detail : json::object();
    detail["run_id"] = run_.id;
    events_.push_back({cause_, a.event, detail.dump()});
  }

  void Flush() { bus_.AddEvents(txn_, events_); }

 private:
  pqxx::transaction_base& txn_;
  bus::Bus& bus_;
  const RunState& run_;
  int64_t cause_;
  std::vector<bus::AuditEvent> events_;
};

}  // namespace

DefinitionCatalog::DefinitionCatalog(std::map<std::string, Definition> current) {
  for (auto& [id, definition] : current) {
    current_[id] = Entry{std::make_shared<const Definition>(std::move(definition)), 0};
  }
}

void DefinitionCatalog::Register(pqxx::connection& conn) {
  pqxx::work txn(conn);
  // Serialises registrations of several brains starting together (version numbers race).
  (void)txn.exec("SELECT pg_advisory_xact_lock(1668245400)");
  std::lock_guard lock(mu_);
  for (auto& [id, entry] : current_) {
    entry.version = txn.exec_params1(sql::kRegisterDefinition, id, entry.definition->digest,
                                     entry.definition->canonical_json)[0]
                        .as<int>();
    pinned_[{id, entry.version}] = entry.definition;
  }
  txn.commit();
}

DefinitionCatalog::Entry DefinitionCatalog::Current(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = current_.find(id);
  return it == current_.end() ? Entry{} : it->second;
}

std::vector<DefinitionCatalog::Entry> DefinitionCatalog::All() const {
  std::lock_guard lock(mu_);
  std::vector<Entry> out;
  for (const auto& [id, entry] : current_) out.push_back(entry);
  return out;
}

std::shared_ptr<const Definition> DefinitionCatalog::Pinned(pqxx::transaction_base& txn,
                                                            const std::string& id, int version) {
  {
    std::lock_guard lock(mu_);
    auto it = pinned_.find({id, version});
    if (it != pinned_.end()) return it->second;
  }
  const auto rows = txn.exec_params(sql::kDefinitionByVersion, id, version);
  if (rows.empty()) throw std::runtime_error("workflow " + id + " has no version " + std::to_string(version));
  auto parsed = ParseDefinition(id, rows[0][0].as<std::string>());
  if (const auto* error = std::get_if<DefinitionError>(&parsed)) {
    throw std::runtime_error("stored workflow " + id + " v" + std::to_string(version) + ": " + error->ToString());
  }
  auto definition = std::make_shared<const Definition>(std::get<Definition>(std::move(parsed)));
  std::lock_guard lock(mu_);
  return pinned_.emplace(std::make_pair(id, version), definition).first->second;
}

runtime::Handler MakeWorkflowHandler(std::shared_ptr<DefinitionCatalog> catalog,
                                     std::shared_ptr<db::ConnectionPool> pool,
                                     std::shared_ptr<spdlog::logger> logger) {
  return [catalog, pool, logger](runtime::HandlerContext& ctx) {
    const auto& m = ctx.message;
    json payload = json::parse(m.payload_json, nullptr, false);
    int64_t run_id = 0;
    if (payload.is_object() && payload.contains("run_id") && payload["run_id"].is_number_integer()) {
      run_id = payload["run_id"].get<int64_t>();
    }
    if (run_id <= 0 || !payload.contains("kind") || !payload["kind"].is_string()) {
      return runtime::HandlerResult::Fail("invalid_workflow_message: needs kind and run_id");
    }
    thread_local std::mt19937_64 rng(std::random_device{}());
    const double jitter = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    std::string summary;
    bool committed = false;
    pool->With([&](pqxx::connection& conn) {
      bus::Bus bus(conn);
      pqxx::work txn(conn);
      // The lease fences every write below: a reclaimed message's late handler writes nothing.
      if (!bus.LockLeases(txn, {m.lease}).front()) {
        summary = "lease lost";
        return;
      }
      const auto rows = txn.exec_params(sql::kLockRun, run_id);
      TransitionResult result;
      if (rows.empty()) {
        result.ignored = "no such run";
      } else {
        const auto& row = rows[0];
        const RunState run = LoadRun(txn, run_id, row);
        const auto definition = catalog->Pinned(txn, row[1].as<std::string>(), row[2].as<int>());
        Event event;
        try {
          event = ReadEvent(txn, payload);
        } catch (const std::exception& e) {
          throw runtime::PermanentError(std::string("invalid_workflow_message: ") + e.what());
        }
        result = Transition(*definition, run, event, row[9].as<int64_t>(), jitter);
        ActionWriter writer(txn, bus, run, m.lease.message_id);
        for (const auto& action : result.actions) std::visit(writer, action);
        writer.Flush();
      }
      json out = {{"run_id", run_id}, {"actions", result.actions.size()}};
      if (!result.ignored.empty()) out["ignored"] = result.ignored;
      summary = result.ignored.empty() ? "advanced run " + std::to_string(run_id) : result.ignored;
      if (!bus.Complete(txn, {m.lease, out.dump(), summary, ""})) throw std::runtime_error("lease lost mid-advance");
      txn.commit();
      committed = true;
    });
    if (!committed) return runtime::HandlerResult::Retry("workflow advance not committed: " + summary);
    logger->debug("workflow message {}: {}", m.lease.message_id, summary);
    return runtime::HandlerResult::Committed();
  };
}

std::string DefaultDefinitionsDir() {
  for (const char* dir : {"config/workflows", COGO_SOURCE_WORKFLOWS_DIR}) {
    if (std::filesystem::is_directory(dir)) return dir;
  }
  return COGO_WORKFLOWS_DIR;
}

std::shared_ptr<DefinitionCatalog> LoadCatalog(const std::string& dir, const std::string& database_url) {
  auto catalog = std::make_shared<DefinitionCatalog>(LoadDefinitions(dir.empty() ? DefaultDefinitionsDir() : dir));
  const auto conn = db::Connect(database_url, "cogo-workflow-catalog");
  catalog->Register(*conn);
  return catalog;
}

void AddEngineWorkers(std::shared_ptr<DefinitionCatalog> catalog, const runtime::WorkerOptions& base,
                      const EngineOptions& options, runtime::DaemonContext& ctx,
                      std::vector<std::unique_ptr<runtime::Component>>& components) {
  runtime::WorkerOptions engine = base;
  engine.service = kEngineService;
  engine.role = kEngineRole;
  engine.shards = {0};
  engine.concurrency = options.concurrency;
  auto pool = std::make_shared<db::ConnectionPool>(ctx.options.database_url, "cogo-workflow-engine",
                                                   static_cast<size_t>(options.concurrency));
  components.push_back(runtime::MakeWorkerComponent(engine, MakeWorkflowHandler(catalog, pool, ctx.logger), ctx));
  runtime::WorkerOptions notify = engine;
  notify.role = kNotifyRole;
  NotifyOptions notify_options;
  if (const char* secret = std::getenv("COGO_NOTIFY_SECRET")) notify_options.secret = secret;
  components.push_back(runtime::MakeWorkerComponent(notify, MakeNotifyHandler(notify_options, ctx.logger), ctx));
}

}  // namespace cogo::workflow
