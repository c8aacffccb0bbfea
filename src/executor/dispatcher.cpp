#include "cogo/executor/dispatcher.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include "cogo/base/clock.h"
#include "cogo/bus/bus.h"
#include "cogo/db/reconnect.h"
#include "cogo/runtime/worker.h"
#include "executor/statements.h"

namespace cogo::executor {
namespace {

using nlohmann::json;
using runtime::HandlerResult;

int64_t EpochMs(policy::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// How long a message whose spend read found no database waits in the queue (the read already
// waited ReconnectPolicy::patience for the server).
constexpr std::chrono::milliseconds kSpendUnavailablePause{1000};

// A permanent refusal: reason first in last_error, and both audit events on the trail.
HandlerResult Refuse(std::string_view reason, const std::string& detail, const std::string& rule) {
  HandlerResult r = HandlerResult::Fail(std::string(reason), detail);
  json event = {{"reason", reason}, {"detail", detail}};
  if (!rule.empty()) event["rule"] = rule;
  r.events.push_back({0, "policy_violation", event.dump()});
  r.events.push_back({0, "execute_failed", event.dump()});
  return r;
}

// One line, no trailing newline (libpq messages end with one).
std::string OneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

std::variant<ExecuteRequest, HandlerResult> Prepare(const bus::ClaimedMessage& message,
                                                    const policy::PolicyTable& table) {
  auto parsed = policy::ParseAssignment(message.payload_json);
  if (!parsed.ok()) return Refuse("assignment_invalid", parsed.error().ToString(), "");
  if (!parsed.envelope().target) {
    return Refuse("assignment_invalid", "target: missing: the executor needs a target route", "");
  }
  ExecuteRequest request{parsed.envelope(), nullptr};
  request.rule = &table.Lookup(request.envelope);
  return request;
}

HandlerResult Decide(const bus::ClaimedMessage& message, const ExecuteRequest& request,
                     const TenantCommitment& committed, double daily_cap_usd,
                     policy::TimePoint now) {
  const policy::AssignmentEnvelope& envelope = request.envelope;
  const policy::PolicyRule& rule = *request.rule;
  // The deadline the bus stored at publish: the TTL rule is the database's alone.
  if (!message.ttl_deadline_epoch) {
    return Refuse("assignment_invalid", "ttl_ms: the bus stored no deadline for it", rule.name);
  }
  const policy::TimePoint deadline = base::FromEpochSeconds(*message.ttl_deadline_epoch);
  const policy::TenantSpend spend{committed.spent_today_usd + committed.reserved_usd, daily_cap_usd};
  const policy::Decision decision = policy::Admit(envelope, rule, deadline, spend, now);
  if (!decision.admitted()) return Refuse(policy::ReasonName(*decision.reject), decision.detail, rule.name);

  bus::PublishRequest hand_off;
  hand_off.service = envelope.target->service;
  hand_off.role = envelope.target->role;
  hand_off.shard = message.route.shard;
  hand_off.tenant = message.tenant;
  hand_off.payload_json = message.payload_json;
  hand_off.priority = message.priority;
  hand_off.max_attempts = rule.max_attempts;
  hand_off.idempotency_key = "execute:" + std::to_string(message.lease.message_id);
  hand_off.correlation_id = message.correlation_id;

  HandlerResult r = HandlerResult::Complete(
      json{{"target", envelope.target->Route()},
           {"shard", message.route.shard},
           {"rule", rule.name},
           {"deadline_ms", EpochMs(deadline)},
           {"tenant_daily_cap_usd", daily_cap_usd}}
          .dump(),
      "handed off to " + envelope.target->Route());
  r.publish.push_back(std::move(hand_off));
  return r;
}

HandlerResult TransientFailure(const bus::ClaimedMessage& message, const policy::PolicyRule& rule,
                               std::string_view reason, std::string_view detail,
                               policy::TimePoint now, double unit_sample) {
  // The bus row's max_attempts decides when the bus dead-letters; judge with it so the audit
  // event agrees with what the bus does. The rule contributes the backoff schedule.
  policy::PolicyRule schedule = rule;
  schedule.max_attempts = std::max(1, message.max_attempts);
  const int attempt = message.lease.attempt;
  const policy::RetryDecision d =
      policy::RetryAt(attempt, policy::ErrorClass::transient, schedule, now, unit_sample);
  HandlerResult r = HandlerResult::Retry(std::string(reason), OneLine(detail), d.delay);
  const std::string text = r.error();
  if (d.action == policy::RetryAction::retry) {
    r.events.push_back({0, "execute_retry",
                        json{{"error", text},
                             {"attempt", attempt},
                             {"max_attempts", schedule.max_attempts},
                             {"delay_ms", d.delay.count()}}
                            .dump()});
    return r;
  }
  r.retry_delay = std::chrono::milliseconds(0);
  r.events.push_back({0, "execute_failed",
                      json{{"reason", "attempts_exhausted"}, {"error", text}, {"attempt", attempt}}
                          .dump()});
  return r;
}

TenantCommitment ReserveHandOff(pqxx::transaction_base& txn, const std::string& tenant,
                                int64_t hand_off_id) {
  pqxx::connection_base& conn = txn.conn();
  conn.prepare(sql::kReserveHandOffName, sql::kReserveHandOff);
  conn.prepare(sql::kAddTenantName, sql::kAddTenant);
  pqxx::result rows = txn.exec_prepared(sql::kReserveHandOffName, tenant, hand_off_id);
  if (rows.empty()) {  // the tenant's first admission
    (void)txn.exec_prepared(sql::kAddTenantName, tenant);
    rows = txn.exec_prepared(sql::kReserveHandOffName, tenant, hand_off_id);
  }
  const auto row = rows.at(0);
  return {row[0].as<double>(), row[1].as<double>()};
}

namespace {

// The handler's state: the policy and one connection (and jitter source) per handler thread.
class Dispatcher {
 public:
  Dispatcher(ExecutorOptions options, std::shared_ptr<spdlog::logger> logger)
      : options_(std::move(options)), logger_(std::move(logger)) {
    if (!options_.policy) throw std::invalid_argument("executor: no policy table");
  }

  HandlerResult Handle(runtime::HandlerContext& ctx) {
    const bus::ClaimedMessage& m = ctx.message;
    auto prepared = Prepare(m, *options_.policy);
    if (auto* refused = std::get_if<HandlerResult>(&prepared)) {
      logger_->warn("execute {} refused: {}", m.lease.message_id, refused->error());
      return std::move(*refused);
    }
    const auto& request = std::get<ExecuteRequest>(prepared);
    ThreadState& state = ForThisThread();
    try {
      // Safe to run again after a lost connection: the lease lock finds a hand-off that did
      // commit (the message is done) and writes nothing.
      return db::WithRetry(spend_connector_, state.conn, [&](pqxx::connection& conn) {
        return AdmitAndHandOff(conn, m, request);
      }, ctx.stop);
    } catch (const std::exception& e) {
      // Our own connection failed, even during the commit: the attempt is given back, not
      // counted. A hand-off that did commit has completed the message, so the give-back finds
      // its lease gone and changes nothing.
      constexpr const char* kReason = "tenant_spend_unavailable";
      const auto kind = db::Classify(e);
      auto result = kind == db::FailureKind::connection_lost || kind == db::FailureKind::in_doubt
                        ? HandlerResult::GiveBack(kReason, OneLine(e.what()), kSpendUnavailablePause)
                        : TransientFailure(m, *request.rule, kReason, e.what(),
                                           std::chrono::system_clock::now(), state.unit(state.rng));
      logger_->warn("execute {} attempt {}: {}", m.lease.message_id, m.lease.attempt, result.error());
      return result;
    }
  }

 private:
  struct ThreadState {
    std::unique_ptr<pqxx::connection> conn;
    std::mt19937_64 rng{std::random_device{}()};
    std::uniform_real_distribution<double> unit{0.0, 1.0};
  };

  // Each handler thread gets its own entry; only that thread touches it after creation.
  ThreadState& ForThisThread() {
    std::lock_guard lock(mu_);
    auto& slot = threads_[std::this_thread::get_id()];
    if (!slot) slot = std::make_unique<ThreadState>();
    return *slot;
  }

  // Judges, hands off and completes, then reserves the hand-off's budget against the tenant's
  // running total as the last statement before the commit: the tenant's row is locked only from
  // there to the commit, and the final judgement uses the total the previous admission of the
  // tenant committed. Over the cap: the whole transaction rolls back and the refusal is returned.
  HandlerResult AdmitAndHandOff(pqxx::connection& conn, const bus::ClaimedMessage& m,
                                const ExecuteRequest& request) {
    bus::Bus bus(conn);
    pqxx::work txn(conn, "execute");
    // The tenant's row is locked until the commit returns: without waiting for the WAL flush
    // the next admission of the tenant starts that much sooner. Losing this commit in a crash
    // loses the hand-off, the completion and the reservation together: the execute message is
    // still running under its lease, and the reclaimer requeues it. Anything that acts on the
    // hand-off commits synchronously, which flushes this commit first.
    txn.exec("SET LOCAL synchronous_commit = off");
    if (!bus.LockLeases(txn, {m.lease}).front()) return HandlerResult::Committed();
    const double cap = options_.policy->DailyCapUsd(m.tenant);
    // Judged by the database's clock, as of the claim (its now()), against the deadline it
    // stored: a host whose wall clock is off admits nothing late.
    const auto now = base::FromEpochSeconds(m.claimed_at_epoch);
    // Every check but the tenant's running total, which only the reservation below can read.
    HandlerResult result = Decide(m, request, TenantCommitment{}, cap, now);
    if (result.kind != HandlerResult::Kind::complete) {
      logger_->warn("execute {} refused: {}", m.lease.message_id, result.error());
      return result;  // reserves nothing: the runtime records it (this transaction rolls back)
    }
    for (auto& hand_off : result.publish) {
      hand_off.parent_id = m.lease.message_id;
      if (bus::Validate(hand_off, bus.limits())) return result;  // the runtime refuses it by name
    }
    const bus::Published hand_off = bus.PublishBatch(txn, result.publish).front();
    // The lease is locked by this transaction: the completion holds.
    (void)bus.Complete(txn, {m.lease, result.result_json, result.snippet, result.url});
    // A hand-off published before (an operator retried a done execute message) holds its own
    // reservation already.
    if (hand_off.created) {
      const TenantCommitment committed = ReserveHandOff(txn, m.tenant, hand_off.id);
      HandlerResult judged = Decide(m, request, committed, cap, now);
      if (judged.kind != HandlerResult::Kind::complete) {
        logger_->warn("execute {} refused: {}", m.lease.message_id, judged.error());
        return judged;  // this transaction rolls back: no hand-off, no reservation
      }
    }
    txn.commit();
    logger_->debug("execute {} handed off to {} under {}", m.lease.message_id,
                   request.envelope.target->Route(), request.rule->name);
    return HandlerResult::Committed();
  }

  const ExecutorOptions options_;
  const std::shared_ptr<spdlog::logger> logger_;
  const db::Connector spend_connector_{options_.database_url, "cogo-executor-spend"};
  std::mutex mu_;
  std::map<std::thread::id, std::unique_ptr<ThreadState>> threads_;
};

}  // namespace

runtime::Handler MakeExecutorHandler(ExecutorOptions options,
                                     std::shared_ptr<spdlog::logger> logger) {
  auto dispatcher = std::make_shared<Dispatcher>(std::move(options), std::move(logger));
  return [dispatcher](runtime::HandlerContext& ctx) { return dispatcher->Handle(ctx); };
}

void ConfigureExecutorWorker(runtime::WorkerOptions& options) {
  options.service = kService;
  options.role = kRole;
  options.guards.enforce_assignment = false;
  options.guards.require_assignment = false;
  options.guards.served_models.clear();
}

}  // namespace cogo::executor
