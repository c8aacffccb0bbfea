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

// The step message an engine message reports on (step_finished), or nullopt.
std::optional<int64_t> ReportedMessage(const json& payload) {
  if (payload.value("kind", "") != "step_finished") return std::nullopt;
  return payload.at("message_id").get<int64_t>();
}

// Loads what Transition needs about a run whose row the transaction has locked (`row`, from
// kLockRun) and the event `payload` stands for, in one round trip (kLoadRunState). Throws
// std::invalid_argument (or a json error) on a malformed payload.
std::pair<RunState, Event> LoadRunAndEvent(pqxx::transaction_base& txn, int64_t run_id, const pqxx::row& row,
                                           const json& payload) {
  const auto kind = payload.at("kind").get<std::string>();
  const auto message_id = ReportedMessage(payload);
  const auto state = txn.exec_params1(sql::kLoadRunState, run_id, message_id);
  RunState run;
  run.id = run_id;
  run.tenant = row[0].as<std::string>();
  run.status = row[3].as<std::string>();
  run.parameters = json::parse(row[4].as<std::string>());
  run.cursor = Text(row[5]).value_or("");
  run.cursor_activation = row[6].as<int>();
  if (!row[7].is_null()) run.max_cost_usd = row[7].as<double>();
  if (!row[8].is_null()) run.max_tokens = row[8].as<int64_t>();
  for (const auto& s : json::parse(state[0].as<std::string>())) {
    StepState step{s[1].get<int>(), s[2].get<std::string>(), s[3], s[4].get<std::string>(), s[5].get<int64_t>(),
                   s[6].is_number() ? s[6].get<double>() : 0.0, s[7].is_number() ? s[7].get<int64_t>() : 0};
    run.total_activations += step.activation;
    run.steps.emplace(s[0].get<std::string>(), std::move(step));
  }
  run.spent_usd = state[1].as<double>();
  run.spent_tokens = state[2].as<int64_t>();
  run.reserved_usd = state[3].as<double>();
  run.reserved_tokens = state[4].as<int64_t>();
  for (const auto& s : json::parse(state[5].as<std::string>())) {
    run.signals.push_back({s[0].get<int64_t>(), s[1].get<std::string>(), s[2], s[3].get<int64_t>()});
  }

  if (kind == "start") return {std::move(run), StartEvent{}};
  if (kind == "signal") return {std::move(run), SignalEvent{payload.at("signal_id").get<int64_t>()}};
  if (kind == "timer") {
    const auto purpose = payload.at("purpose").get<std::string>();
    return {std::move(run), TimerEvent{payload.at("node").get<std::string>(), payload.at("activation").get<int>(),
                                       purpose == "retry_backoff" ? TimerPurpose::retry_backoff
                                                                  : TimerPurpose::wait_timeout}};
  }
  if (kind == "step_finished") {
    if (state[6].is_null()) throw std::invalid_argument("no such step message");
    StepFinishedEvent e;
    e.node = payload.at("node").get<std::string>();
    e.activation = payload.at("activation").get<int>();
    e.message_status = state[6].as<std::string>();
    e.result = JsonOrNull(state[7]);
    e.error = state[8].as<std::string>();
    e.spent_usd = state[9].as<double>();
    e.spent_tokens = state[10].as<int64_t>();
    return {std::move(run), std::move(e)};
  }
  throw std::invalid_argument("unknown workflow message kind " + kind);
}

json NullIfEmpty(const std::string& text) { return text.empty() ? json() : json(text); }

// Collects one transition's actions and writes them in three statements: the messages (one
// batch), the run's tables (kApplyTransition) and the audit rows. `cause` is the engine
// message (parent of what it publishes, owner of the audit rows).
class ActionWriter {
 public:
  ActionWriter(pqxx::transaction_base& txn, bus::Bus& bus, const RunState& run, int64_t cause)
      : txn_(txn), bus_(bus), run_(run), cause_(cause) {}

  void operator()(const StartStep& a) {
    started_.push_back({{"node", a.node}, {"activation", a.activation}, {"node_type", NodeTypeName(a.type)},
                        {"status", a.status}, {"input", a.input}, {"message_id", nullptr},
                        {"reserved_usd", a.reserved_usd}, {"reserved_tokens", a.reserved_tokens},
                        {"output", nullptr}, {"error", nullptr}, {"finished", false}});
    // A step that failed before publishing (template, budget) has no route.
    if (a.service.empty()) return;
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
    step_of_publish_.push_back(started_.size() - 1);
    publish_.push_back(std::move(request));
  }
  void operator()(const FinishStep& a) {
    for (auto& row : started_) {
      if (row["node"] == a.node && row["activation"] == a.activation) {
        row["status"] = a.status;
        row["output"] = a.output;
        row["error"] = NullIfEmpty(a.error);
        row["finished"] = true;
        return;
      }
    }
    finished_.push_back({{"node", a.node}, {"activation", a.activation}, {"status", a.status},
                         {"output", a.output}, {"error", NullIfEmpty(a.error)}});
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
    request.idempotency_key = TimerKey(a.node, a.activation, a.purpose);
    request.correlation_id = Correlation(run_.id);
    request.delay_ms = std::max<int64_t>(a.delay.count(), 1);
    step_of_publish_.push_back(kNoStep);
    publish_.push_back(std::move(request));
  }
  void operator()(const CancelTimer& a) { cancelled_timers_.push_back(TimerKey(a.node, a.activation, a.purpose)); }
  void operator()(const ConsumeSignal& a) {
    consumed_.push_back({{"id", a.signal_id}, {"by", a.node + "#" + std::to_string(a.activation)}});
  }
  // The run's row is written once: the last cursor, and the status of whichever came last.
  void operator()(const MoveCursor& a) {
    cursor_node_ = a.node;
    cursor_activation_ = a.activation;
    run_status_ = a.status;
  }
  void operator()(const FinishRun& a) {
    run_status_ = a.status;
    reason_ = a.reason.empty() ? std::optional<std::string>() : a.reason;
    finished_run_ = true;
  }
  void operator()(const Audit& a) {
    json detail = a.detail.is_object() ? a.detail : json::object();
    detail["run_id"] = run_.id;
    events_.push_back({cause_, a.event, detail.dump()});
  }

  void Flush() {
    if (!publish_.empty()) {
      const auto published = bus_.PublishBatch(txn_, publish_);
      for (size_t i = 0; i < published.size(); ++i) {
        if (step_of_publish_[i] != kNoStep) started_[step_of_publish_[i]]["message_id"] = published[i].id;
      }
    }
    if (!started_.empty() || !finished_.empty() || !consumed_.empty() || run_status_ || cursor_node_) {
      (void)txn_.exec_params1(sql::kApplyTransition, run_.id, started_.dump(), finished_.dump(), consumed_.dump(),
                        cursor_node_, cursor_activation_, run_status_, reason_, finished_run_);
    }
    if (!cancelled_timers_.empty()) {
      (void)bus_.CancelQueued(txn_, kEngineService, kEngineRole, run_.tenant, cancelled_timers_, "wait_satisfied");
    }
    if (!events_.empty()) bus_.AddEvents(txn_, events_);
  }

 private:
  static constexpr size_t kNoStep = static_cast<size_t>(-1);
  // A timer message's idempotency key: one timer per (node, activation, purpose) of a run.
  [[nodiscard]] std::string TimerKey(const std::string& node, int activation, TimerPurpose purpose) const {
    return "wf-timer:" + std::to_string(run_.id) + ":" + node + ":" + std::to_string(activation) + ":" +
           TimerPurposeName(purpose);
  }
  pqxx::transaction_base& txn_;
  bus::Bus& bus_;
  const RunState& run_;
  int64_t cause_;
  std::vector<bus::PublishRequest> publish_;
  std::vector<size_t> step_of_publish_;  // the started_ row a publish is the message of
  json started_ = json::array();
  json finished_ = json::array();
  json consumed_ = json::array();
  std::vector<std::string> cancelled_timers_;
  std::optional<std::string> cursor_node_;
  std::optional<int> cursor_activation_;
  std::optional<std::string> run_status_;
  std::optional<std::string> reason_;
  bool finished_run_ = false;
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
      return runtime::HandlerResult::Fail("invalid_workflow_message", "needs kind and run_id");
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
        std::pair<RunState, Event> loaded;
        try {
          loaded = LoadRunAndEvent(txn, run_id, row, payload);
        } catch (const json::exception& e) {
          throw runtime::PermanentError("invalid_workflow_message", e.what());
        } catch (const std::invalid_argument& e) {
          throw runtime::PermanentError("invalid_workflow_message", e.what());
        }
        const auto& [run, event] = loaded;
        const auto definition = catalog->Pinned(txn, row[1].as<std::string>(), row[2].as<int>());
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
    if (!committed) return runtime::HandlerResult::Retry("workflow_advance_not_committed", summary);
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
