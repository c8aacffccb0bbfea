#include "cogo/runtime/guards.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cogo/bus/bus.h"
#include "cogo/db/reconnect.h"

namespace cogo::runtime {
namespace {

bool HasNulCharacter(const nlohmann::json& j) {
  if (j.is_string()) return j.get_ref<const std::string&>().find('\0') != std::string::npos;
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (key.find('\0') != std::string::npos || HasNulCharacter(value)) return true;
    }
  }
  if (j.is_array()) {
    for (const auto& value : j) {
      if (HasNulCharacter(value)) return true;
    }
  }
  return false;
}

// A guard's verdict: a permanent failure with its reason, and a policy_violation event.
HandlerResult Violation(const std::string& reason, const std::string& detail) {
  HandlerResult r = HandlerResult::Fail(reason, detail);
  r.events.push_back({0, "policy_violation", nlohmann::json{{"reason", reason}, {"detail", detail}}.dump()});
  return r;
}

// Whether `text` is a result document jsonb takes: JSON without the character U+0000 in a string
// (jsonb cannot store it). A flush carrying one would fail for every outcome in its batch.
bool IsJson(const std::string& text) {
  if (text.empty()) return true;
  if (!nlohmann::json::accept(text)) return false;
  return text.find("\\u0000") == std::string::npos || !HasNulCharacter(nlohmann::json::parse(text));
}

}  // namespace

Outcome Outcome::Release(const bus::Lease& lease) {
  Outcome o;
  o.kind = Kind::release;
  o.completion.lease = lease;
  return o;
}

Outcome Outcome::Fail(bus::Failure failure) {
  Outcome o;
  o.kind = Kind::fail;
  o.failure = std::move(failure);
  return o;
}

BeforeRunVerdict BeforeRun(const GuardRules& rules, const bus::ClaimedMessage& m,
                           base::Clock::TimePoint claim_sent, base::Clock::TimePoint now) {
  BeforeRunVerdict v;
  if (!rules.enforce_assignment) return v;
  if (m.payload_json.find("\"__assignment\"") == std::string::npos && !rules.require_assignment) return v;
  auto parsed = policy::ParseAssignment(m.payload_json);
  if (!parsed.ok()) {
    if (parsed.error().code != policy::AssignmentErrorCode::missing_assignment) {
      v.refusal = Violation("assignment_invalid", parsed.error().ToString());
    } else if (rules.require_assignment) {
      v.refusal = Violation("assignment_missing", "the payload has no __assignment");
    }
    return v;
  }
  v.assignment = parsed.envelope();
  if (!m.ttl_deadline_epoch) {  // the bus's TTL rule found no usable TTL where the parser did
    v.refusal = Violation("assignment_invalid", "ttl_ms: the bus stored no deadline for it");
    return v;
  }
  // Both ends of the time left are database readings: the stored deadline and the claim's now().
  v.deadline = base::DeadlineOnSteadyClock(base::FromEpochSeconds(*m.ttl_deadline_epoch),
                                           base::FromEpochSeconds(m.claimed_at_epoch), claim_sent);
  const auto& served = rules.served_models;
  if (!served.empty() && std::find(served.begin(), served.end(), v.assignment->model) == served.end()) {
    v.refusal = Violation("model_not_served", "this worker does not serve model " + v.assignment->model);
  } else if (now >= *v.deadline) {
    v.refusal = Violation("ttl_exceeded", "the assignment's TTL ran out before the work started");
  }
  return v;
}

HandlerResult AfterRun(HandlerResult result, policy::MeterVerdict budget, const policy::Usage& spent,
                       std::optional<base::Clock::TimePoint> deadline, base::Clock::TimePoint now) {
  if (result.kind == HandlerResult::Kind::committed) return result;
  if (budget != policy::MeterVerdict::within) {
    return Violation("budget_exceeded", fmt::format("{} ({} tokens, {:.6f} USD spent)",
                                                    policy::VerdictName(budget),
                                                    spent.total_tokens(), spent.cost_usd));
  }
  if (deadline && now > *deadline) {
    return Violation("ttl_exceeded", "the handler ran past the assignment's TTL");
  }
  return result;
}

Outcome ToOutcome(const bus::ClaimedMessage& m, HandlerResult result,
                  const policy::AssignmentEnvelope* assignment,
                  const std::optional<policy::Usage>& usage, const policy::BackoffParams& backoff,
                  double unit_sample) {
  // A follow-up or event that cannot be written would fail the whole flush: judge it here.
  if (result.kind == HandlerResult::Kind::complete) {
    for (const auto& follow_up : result.publish) {
      if (auto rejection = bus::Validate(follow_up, {})) {
        result = HandlerResult::Fail("invalid_follow_up", rejection->reason + ": " + rejection->detail);
        break;
      }
    }
  }
  if (!IsJson(result.result_json) ||
      std::any_of(result.events.begin(), result.events.end(), [](const bus::AuditEvent& e) {
        return e.event.empty() || !IsJson(e.detail_json);
      })) {
    result = HandlerResult::Fail("invalid_handler_result", "result or event detail is not JSON (as PostgreSQL's jsonb takes it)");
  }

  Outcome outcome;
  const bus::Lease& lease = m.lease;
  if (result.kind == HandlerResult::Kind::committed) {
    outcome.kind = Outcome::Kind::committed;
    outcome.completion.lease = lease;
    outcome.lease_lost = result.lease_lost;
    return outcome;
  }
  for (auto& e : result.events) {
    if (e.message_id == 0) e.message_id = lease.message_id;
  }
  outcome.events = std::move(result.events);
  if (result.kind == HandlerResult::Kind::complete) {
    outcome.completion = {lease, std::move(result.result_json), std::move(result.snippet),
                          std::move(result.url)};
    outcome.publish = std::move(result.publish);
    for (auto& follow_up : outcome.publish) follow_up.parent_id = lease.message_id;
  } else {
    outcome.kind = Outcome::Kind::fail;
    const auto delay = result.retry_delay.value_or(policy::NextBackoff(lease.attempt, backoff, unit_sample));
    const auto kind = result.kind == HandlerResult::Kind::retry       ? bus::FailureKind::retryable
                      : result.kind == HandlerResult::Kind::give_back ? bus::FailureKind::infrastructure
                                                                      : bus::FailureKind::permanent;
    outcome.failure = {lease, result.error(), kind, delay.count()};
  }
  if (usage) {
    outcome.usage = usage::RecordOf(m, assignment, *usage,
                                    outcome.kind == Outcome::Kind::complete ? "completed" : result.reason);
  }
  return outcome;
}

HandlerResult CallHandler(const Handler& handler, HandlerContext& context) {
  try {
    return handler(context);
  } catch (const PermanentError& e) {
    return HandlerResult::Fail(e.reason(), e.detail());
  } catch (const std::exception& e) {
    return db::Classify(e) == db::FailureKind::connection_lost
               ? HandlerResult::GiveBack("connection_lost", e.what())
               : HandlerResult::Retry("handler_exception", e.what());
  } catch (...) {
    return HandlerResult::Retry("handler_exception", "a non-standard exception");
  }
}

}  // namespace cogo::runtime
