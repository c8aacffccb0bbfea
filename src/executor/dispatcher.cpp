#include "cogo/executor/dispatcher.h"

#include <algorithm>
#include <map>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/except>
#include <pqxx/result>

#include "cogo/base/clock.h"
#include "cogo/base/flat_combiner.h"
#include "cogo/bus/bus.h"
#include "cogo/db/connection.h"
#include "cogo/db/pipelined_transaction.h"
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

std::map<std::string, size_t> QueueReserveHandOffs(
    db::PipelinedTransaction& t, const std::map<std::string, std::vector<int64_t>>& execute_ids,
    const policy::PolicyTable* within_caps) {
  pqxx::connection_base& conn = t.connection();
  conn.prepare(sql::kAddTenantName, sql::kAddTenant);
  if (within_caps != nullptr) {
    conn.prepare(sql::kReserveHandOffsWithinCapName, sql::kReserveHandOffsWithinCap);
  } else {
    conn.prepare(sql::kReserveHandOffsName, sql::kReserveHandOffs);
  }
  std::map<std::string, size_t> positions;
  for (const auto& [tenant, ids] : execute_ids) {
    (void)t.Queue(sql::kAddTenantName, {t.Literal(tenant)});
    if (within_caps != nullptr) {
      positions[tenant] = t.Queue(sql::kReserveHandOffsWithinCapName,
                                  {t.Literal(tenant), t.Literal(db::IntArrayLiteral(ids)),
                                   t.Literal(fmt::format("{}", within_caps->DailyCapUsd(tenant)))});
    } else {
      positions[tenant] = t.Queue(sql::kReserveHandOffsName, {t.Literal(tenant), t.Literal(db::IntArrayLiteral(ids))});
    }
  }
  return positions;
}

bool IsOverDailyCap(const std::exception& error) { return db::HasSqlState(error, "CL002"); }

TenantCommitment ReadCommitment(const pqxx::result& rows) {
  const auto row = rows.at(0);
  return {row[0].as<double>(), row[1].as<double>()};
}

namespace {

// One claimed execute message waiting for its admission.
struct Admission {
  const bus::ClaimedMessage& message;
  const ExecuteRequest& request;
  std::stop_token stop;
};

// The handler's state: the policy, and the admissions waiting for the one handler thread that
// admits a group of them at a time (on the dispatcher's one connection).
class Dispatcher {
 public:
  Dispatcher(ExecutorOptions options, std::shared_ptr<spdlog::logger> logger)
      : options_(std::move(options)), logger_(std::move(logger)) {
    if (!options_.policy) throw std::invalid_argument("executor: no policy table");
  }

  // Admissions are combined (base::FlatCombiner): under load a tenant's row is locked and a
  // commit made once per group instead of once per message, and handler threads no longer queue
  // on the tenant's row lock.
  HandlerResult Handle(runtime::HandlerContext& ctx) {
    const bus::ClaimedMessage& m = ctx.message;
    auto prepared = Prepare(m, *options_.policy);
    if (auto* refused = std::get_if<HandlerResult>(&prepared)) {
      logger_->warn("execute {} refused: {}", m.lease.message_id, refused->error());
      return std::move(*refused);
    }
    return admissions_.Submit(Admission{m, std::get<ExecuteRequest>(prepared), ctx.stop},
                              [&](const std::vector<Admission*>& group) {
      try {
        return AdmitGroup(group, ctx.stop);
      } catch (const std::exception& e) {  // out of memory, say: every waiter still gets an answer
        return std::vector<HandlerResult>(group.size(), HandlerResult::Retry("handler_exception", OneLine(e.what())));
      }
    });
  }

 private:
  // What one transaction made of a group, by index into it: `results`, committed. When a tenant's
  // running total refused some of a group of several, the transaction rolled back instead: those
  // are `over_cap`, the hand-offs that fit are `fit`, and only the other results (leases lost,
  // refusals by the policy) stand.
  struct Attempt {
    std::vector<HandlerResult> results;
    std::vector<size_t> over_cap;
    std::vector<size_t> fit;
  };

  // The result of every admission in `group`, in order. When a tenant's running total refuses
  // some, the ones that fit are admitted again as a group first, and then the refused ones alone
  // (so they are judged against everything admitted before them, as one at a time in that order
  // would be); a group whose transaction failed is admitted one message at a time, so a failure
  // belongs to the message it concerns.
  std::vector<HandlerResult> AdmitGroup(const std::vector<Admission*>& group, std::stop_token stop) {
    std::vector<HandlerResult> results(group.size());
    std::vector<size_t> pending(group.size());
    for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
    std::vector<size_t> over_cap;  // admitted alone at the end
    while (pending.size() > 1) {
      std::vector<Admission*> members;
      for (size_t i : pending) members.push_back(group[i]);
      Attempt attempt;
      try {
        attempt = WithConnection(stop, members);
      } catch (const std::exception& e) {
        logger_->warn("a group of {} admissions failed; admitting them one at a time: {}", members.size(),
                      OneLine(e.what()));
        break;
      }
      if (attempt.over_cap.empty()) {  // committed
        for (size_t k = 0; k < pending.size(); ++k) results[pending[k]] = std::move(attempt.results[k]);
        pending.clear();
        break;
      }
      const auto listed = [](const std::vector<size_t>& list, size_t k) {
        return std::find(list.begin(), list.end(), k) != list.end();
      };
      std::vector<size_t> fit;
      for (size_t k = 0; k < pending.size(); ++k) {
        if (listed(attempt.over_cap, k)) {
          over_cap.push_back(pending[k]);
        } else if (listed(attempt.fit, k)) {
          fit.push_back(pending[k]);
        } else {
          results[pending[k]] = std::move(attempt.results[k]);
        }
      }
      pending.swap(fit);
    }
    for (size_t i : pending) results[i] = AdmitAlone(*group[i]);
    for (size_t i : over_cap) results[i] = AdmitAlone(*group[i]);
    return results;
  }

  HandlerResult AdmitAlone(Admission& a) {
    const bus::ClaimedMessage& m = a.message;
    try {
      // Safe to run again after a lost connection: the lease lock finds a hand-off that did
      // commit (the message is done) and writes nothing.
      return std::move(WithConnection(a.stop, {&a}).results.front());
    } catch (const std::exception& e) {
      // Our own connection failed, even during the commit: the attempt is given back, not
      // counted. A hand-off that did commit has completed the message, so the give-back finds
      // its lease gone and changes nothing.
      constexpr const char* kReason = "tenant_spend_unavailable";
      const auto kind = db::Classify(e);
      HandlerResult result =
          kind == db::FailureKind::connection_lost || kind == db::FailureKind::in_doubt
              ? HandlerResult::GiveBack(kReason, OneLine(e.what()), kSpendUnavailablePause)
              : TransientFailure(m, *a.request.rule, kReason, e.what(), std::chrono::system_clock::now(),
                                 unit_(rng_));
      logger_->warn("execute {} attempt {}: {}", m.lease.message_id, m.lease.attempt, result.error());
      return result;
    }
  }

  Attempt WithConnection(std::stop_token stop, const std::vector<Admission*>& group) {
    return db::WithRetry(connector_, conn_, [&](pqxx::connection& conn) { return TryAdmit(conn, group); },
                         stop);
  }

  // In one transaction, for every admission of the group: lock the lease (gone: Committed, nothing
  // written), judge everything but the tenant's running total, publish the admitted hand-offs and
  // complete their execute messages, then reserve each tenant's hand-offs against its running
  // total (the last statements before the commit, tenants in name order) and judge each hand-off
  // in turn against the total before it. Refused there: the transaction rolls back; a group of
  // one returns the refusal, a larger group every admission refused (Attempt::over_cap).
  Attempt TryAdmit(pqxx::connection& conn, const std::vector<Admission*>& group) {
    bus::Bus bus(conn);
    std::vector<bus::Lease> leases;
    for (const Admission* a : group) leases.push_back(a->message.lease);
    // Usually one round trip (db::PipelinedTransaction): BEGIN, the lock, the hand-offs, the
    // completions, the reservations and COMMIT in one message, on the guess that every lease
    // still holds and every tenant stays within its cap (both asserted by the database: the
    // message stops and rolls back when one does not). When the guess fails, or the tenant's
    // last known total says it would, two: the same statements with the lock that says which
    // leases hold, then COMMIT once the cap's verdicts are in. A lease the lock finds lost rolls
    // that back too, and the group is queued again without it (a lost lease never comes back,
    // so this ends).
    std::vector<bool> held(group.size(), true);
    bool one_message = true;
    while (true) {
      // Committed with synchronous_commit off (the connector's session setting): the tenants'
      // rows are locked until the commit returns, and without waiting for the WAL flush the next
      // group starts that much sooner. Losing this commit in a crash loses the hand-offs, the
      // completions and the reservations together: the execute messages are still running under
      // their leases, and the reclaimer requeues them. Anything that acts on a hand-off commits
      // synchronously, which flushes this commit first.
      db::PipelinedTransaction t(conn);

      Attempt attempt;
      std::vector<HandlerResult>& results = attempt.results;
      results.resize(group.size());
      std::vector<size_t> admitted;  // indexes into group, in the order of their hand-offs
      std::vector<bus::PublishRequest> hand_offs;
      std::vector<bus::Completion> completions;
      std::vector<size_t> refused;  // by the policy: logged once the lock confirmed their leases
      for (size_t i = 0; i < group.size(); ++i) {
        const bus::ClaimedMessage& m = group[i]->message;
        if (!held[i]) {
          results[i] = HandlerResult::LeaseLost();
          continue;
        }
        HandlerResult r = Decide(m, group[i]->request, TenantCommitment{}, Cap(m), ClaimedAt(m));
        if (r.kind != HandlerResult::Kind::complete) {
          results[i] = std::move(r);  // reserves nothing: the runtime records it
          refused.push_back(i);
          continue;
        }
        bus::PublishRequest& hand_off = r.publish.front();
        hand_off.parent_id = m.lease.message_id;
        if (bus::Validate(hand_off, bus.limits())) {
          results[i] = std::move(r);  // the runtime refuses it by name
          continue;
        }
        admitted.push_back(i);
        hand_offs.push_back(std::move(hand_off));
        completions.push_back({m.lease, r.result_json, r.snippet, r.url});
      }
      one_message = one_message && !admitted.empty() && ExpectedToFit(group, admitted);
      const size_t lock = one_message ? bus.QueueLockAllLeases(t, leases) : bus.QueueLockLeases(t, leases);
      std::optional<size_t> publish;
      std::map<std::string, size_t> reservations;  // tenant -> position of its result
      if (!admitted.empty()) {
        publish = bus.QueuePublish(t, hand_offs);
        // The leases are locked by this transaction: the completions hold.
        (void)bus.QueueComplete(t, completions);
        std::map<std::string, std::vector<int64_t>> execute_ids;
        for (size_t i : admitted) execute_ids[group[i]->message.tenant].push_back(group[i]->message.lease.message_id);
        reservations = QueueReserveHandOffs(t, execute_ids, one_message ? options_.policy.get() : nullptr);
      }
      if (one_message) {
        try {
          const std::vector<pqxx::result> committed = t.Commit();
          const std::map<std::string, double> added = CostByTenant(group, admitted);
          for (const auto& [tenant, position] : reservations) {
            const TenantCommitment before = ReadCommitment(committed.at(position));
            last_committed_usd_[tenant] = before.spent_today_usd + before.reserved_usd + added.at(tenant);
          }
          for (size_t i : refused) {
            logger_->warn("execute {} refused: {}", group[i]->message.lease.message_id, results[i].error());
          }
          HandedOff(group, admitted, results);
          return attempt;
        } catch (const pqxx::in_doubt_error& e) {
          // The connection broke with the whole admission in flight. Repeating it is harmless (the
          // lease lock finds a group that did commit done, and writes nothing), so it is retried on a
          // new connection like a statement that never reached the server (db::WithRetry).
          throw pqxx::broken_connection(std::string("the admission's connection broke: ") + e.what());
        } catch (const std::exception& e) {
          if (!bus::IsLeaseLost(e) && !IsOverDailyCap(e)) throw;
        }
        t.Rollback();  // a connection that broke meanwhile fails here, not in the next message
        one_message = false;
        continue;
      }
      const std::vector<pqxx::result> sent = t.Send();
      const std::vector<bool> locked = bus::Bus::ReadHeld(sent[lock], leases);
      bool lost = false;
      for (size_t i = 0; i < held.size(); ++i) {
        if (held[i] && !locked[i]) held[i] = false, lost = true;
      }
      if (lost) {
        t.Rollback();
        continue;
      }
      for (size_t i : refused) {
        logger_->warn("execute {} refused: {}", group[i]->message.lease.message_id, results[i].error());
      }
      if (admitted.empty()) return attempt;  // nothing to write: the transaction rolls back
      const std::vector<bus::Published> published = bus::Bus::ReadPublished(sent[*publish], hand_offs.size());

      // A hand-off published before (an operator retried a done execute message) holds its own
      // reservation already, and the reservation did not count it.
      std::map<std::string, std::vector<size_t>> created;  // tenant -> positions in `admitted`
      for (size_t k = 0; k < admitted.size(); ++k) {
        if (published[k].created) created[group[admitted[k]]->message.tenant].push_back(k);
      }
      for (const auto& [tenant, positions] : created) {
        TenantCommitment committed = ReadCommitment(sent.at(reservations.at(tenant)));
        last_committed_usd_[tenant] = committed.spent_today_usd + committed.reserved_usd;
        for (size_t k : positions) {
          const size_t i = admitted[k];
          const Admission& a = *group[i];
          HandlerResult judged = Decide(a.message, a.request, committed, Cap(a.message), ClaimedAt(a.message));
          if (judged.kind == HandlerResult::Kind::complete) {
            committed.reserved_usd += a.request.envelope.budget.max_cost_usd;
            attempt.fit.push_back(i);
          } else if (group.size() > 1) {
            attempt.over_cap.push_back(i);  // the ones after it are judged as if it were not there
          } else {
            logger_->warn("execute {} refused: {}", a.message.lease.message_id, judged.error());
            results[i] = std::move(judged);
            return attempt;  // this transaction rolls back: no hand-off, no reservation
          }
        }
        last_committed_usd_[tenant] = committed.spent_today_usd + committed.reserved_usd;
      }
      if (!attempt.over_cap.empty()) {
        for (size_t k = 0; k < admitted.size(); ++k) {  // a hand-off published before fits as it is
          if (!published[k].created) attempt.fit.push_back(admitted[k]);
        }
        return attempt;  // rolls back
      }
      t.Commit();
      HandedOff(group, admitted, results);
      return attempt;
    }
  }

  void HandedOff(const std::vector<Admission*>& group, const std::vector<size_t>& admitted,
                 std::vector<HandlerResult>& results) {
    for (size_t i : admitted) {
      const Admission& a = *group[i];
      results[i] = HandlerResult::Committed();
      logger_->debug("execute {} handed off to {} under {}", a.message.lease.message_id,
                     a.request.envelope.target->Route(), a.request.rule->name);
    }
  }

  // Whether the admitted hand-offs fit their tenants' caps by the totals the last admissions of
  // those tenants saw (a tenant not seen yet is expected to fit). Only a guess of which way to
  // send the admission: the database judges the cap either way. A tenant at its cap is then
  // refused without a failed statement per message (which the server would log, literals and
  // all); a total that fell meanwhile (a new UTC day, hand-offs ended) is seen by the next
  // admission sent in two messages, which reads it.
  bool ExpectedToFit(const std::vector<Admission*>& group, const std::vector<size_t>& admitted) const {
    for (const auto& [tenant, usd] : CostByTenant(group, admitted)) {
      const auto known = last_committed_usd_.find(tenant);
      const double committed = known == last_committed_usd_.end() ? 0.0 : known->second;
      if (committed + usd > options_.policy->DailyCapUsd(tenant)) return false;
    }
    return true;
  }

  static std::map<std::string, double> CostByTenant(const std::vector<Admission*>& group,
                                                    const std::vector<size_t>& admitted) {
    std::map<std::string, double> total;
    for (size_t i : admitted) total[group[i]->message.tenant] += group[i]->request.envelope.budget.max_cost_usd;
    return total;
  }

  double Cap(const bus::ClaimedMessage& m) const { return options_.policy->DailyCapUsd(m.tenant); }

  // Judged by the database's clock, as of the claim (its now()), against the deadline it
  // stored: a host whose wall clock is off admits nothing late.
  static policy::TimePoint ClaimedAt(const bus::ClaimedMessage& m) {
    return base::FromEpochSeconds(m.claimed_at_epoch);
  }

  const ExecutorOptions options_;
  const std::shared_ptr<spdlog::logger> logger_;
  // Plans like a worker's flush session: an admission's statements find messages by primary key
  // (a generic plan made on a fresh database read the reservation's hand-offs with a sequential
  // scan of agent_messages, on every admission).
  const db::Connector connector_{options_.database_url, "cogo-executor-spend", db::ReconnectPolicy{},
                                 std::string("SET synchronous_commit = off; ") + db::kPreferIndexScans};

  base::FlatCombiner<Admission, HandlerResult> admissions_;
  // Used by the thread running a group only.
  std::unique_ptr<pqxx::connection> conn_;
  std::map<std::string, double> last_committed_usd_;  // tenant -> spent + reserved, as last read
  std::mt19937_64 rng_{std::random_device{}()};
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
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
