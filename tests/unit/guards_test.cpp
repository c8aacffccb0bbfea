// The worker's guards as tables: before the run (which violations stop a handler from starting,
// and the deadline it gets), after the run (what outranks the handler's answer), and the
// mapping of an answer to the bus outcome.
#include "cogo/runtime/guards.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace cogo::runtime {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = base::Clock::TimePoint;

// The database's clock is far from this host's: only differences of its readings matter.
constexpr double kCreated = 4'000'000'000.0;  // seconds since the epoch, database clock
const Steady kSent = Steady(seconds(1000));   // the steady clock when the claim was sent

std::string Assignment(const std::string& model, int64_t ttl_ms) {
  return json{{"__assignment",
               {{"agent_id", "a"},
                {"version", "v1"},
                {"model", model},
                {"budget", {{"maxCostUsd", 1.0}, {"maxTokens", 100}}},
                {"ttl_ms", ttl_ms}}}}
      .dump();
}

// `deadline_after_s`: the TTL deadline the bus stored, seconds after created_at (nullopt: none).
bus::ClaimedMessage Message(std::string payload, double claimed_after_s = 0.0,
                            std::optional<double> deadline_after_s = std::nullopt) {
  bus::ClaimedMessage m;
  m.lease = {42, "w", 2, 7};
  m.route = {"test", "echo", 0};
  m.tenant = "t";
  m.payload_json = std::move(payload);
  m.created_at_epoch = kCreated;
  m.claimed_at_epoch = kCreated + claimed_after_s;
  if (deadline_after_s) m.ttl_deadline_epoch = kCreated + *deadline_after_s;
  return m;
}

TEST(Guards, BeforeRunRefusesViolationsByName) {
  const GuardRules served_small{{"small"}, false, true};
  const GuardRules required{{}, true, true};
  const GuardRules not_enforced{{"small"}, true, false};
  struct Case {
    const char* name;
    GuardRules rules;
    bus::ClaimedMessage message;
    Steady now;
    const char* refusal;  // "" : the handler runs
  };
  const Case cases[] = {
      {"no assignment, none required", served_small, Message(R"({"x":1})"), kSent, ""},
      {"no assignment, required", required, Message(R"({"x":1})"), kSent, "assignment_missing"},
      {"invalid assignment", served_small, Message(R"({"__assignment":{"agent_id":"a"}})"), kSent,
       "assignment_invalid"},
      {"model not served", served_small, Message(Assignment("big", 60000), 0.0, 60.0), kSent, "model_not_served"},
      {"any model served", required, Message(Assignment("big", 60000), 0.0, 60.0), kSent, ""},
      {"within its TTL", served_small, Message(Assignment("small", 60000), 59.0, 60.0), kSent + seconds(0), ""},
      {"TTL ran out in the queue", served_small, Message(Assignment("small", 60000), 60.0, 60.0), kSent,
       "ttl_exceeded"},
      {"TTL ran out after the claim", served_small, Message(Assignment("small", 60000), 30.0, 60.0),
       kSent + seconds(30), "ttl_exceeded"},
      // The stored deadline decides, not created_at + ttl_ms (an issued_at before created_at
      // moved it earlier): the worker has no TTL rule of its own.
      {"the stored deadline passed before created_at + ttl", served_small,
       Message(Assignment("small", 60000), 30.0, 10.0), kSent, "ttl_exceeded"},
      {"the stored deadline is later than created_at + ttl", served_small,
       Message(Assignment("small", 60000), 90.0, 120.0), kSent, ""},
      {"a TTL the bus found no deadline for", served_small, Message(Assignment("small", 60000), 0.0), kSent,
       "assignment_invalid"},
      {"not enforced", not_enforced, Message(R"({"__assignment":{}})"), kSent, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const BeforeRunVerdict v = BeforeRun(c.rules, c.message, kSent, c.now);
    if (*c.refusal == '\0') {
      EXPECT_FALSE(v.refusal.has_value()) << v.refusal->error();
      continue;
    }
    ASSERT_TRUE(v.refusal.has_value());
    EXPECT_EQ(v.refusal->kind, HandlerResult::Kind::fail);
    EXPECT_EQ(v.refusal->reason, c.refusal);
    ASSERT_EQ(v.refusal->events.size(), 1u);
    EXPECT_EQ(v.refusal->events[0].event, "policy_violation");
    EXPECT_EQ(json::parse(v.refusal->events[0].detail_json)["reason"], c.refusal);
  }
}

// The time left is measured on the database's clock (the stored deadline - the claim's now())
// and counted from when the claim was sent: how far the database's clock is from this host's
// never enters, nor does the TTL in the payload.
TEST(Guards, TheDeadlineIsTheTimeTheDatabaseLeftCountedFromTheClaim) {
  const GuardRules rules{{}, false, true};
  struct Case {
    double waited_s;    // the claim's now() - created_at
    double deadline_s;  // the stored deadline - created_at
  };
  for (const Case c : {Case{0.0, 60.0}, Case{1.5, 60.0}, Case{59.0, 60.0}, Case{5.0, 20.0}, Case{5.0, 90.0}}) {
    SCOPED_TRACE(c.waited_s);
    SCOPED_TRACE(c.deadline_s);
    const auto v = BeforeRun(rules, Message(Assignment("m", 60000), c.waited_s, c.deadline_s), kSent, kSent);
    ASSERT_TRUE(v.deadline.has_value());
    // Epoch seconds as doubles carry about a microsecond of rounding at this magnitude.
    using Ms = std::chrono::duration<double, std::milli>;
    EXPECT_NEAR(Ms(*v.deadline - kSent).count(), (c.deadline_s - c.waited_s) * 1000.0, 0.01);
  }
  EXPECT_FALSE(BeforeRun(rules, Message(R"({"x":1})"), kSent, kSent).deadline.has_value());
}

TEST(Guards, AfterRunTheBudgetAndTheDeadlineOutrankTheAnswerUnlessCommitted) {
  using V = policy::MeterVerdict;
  const Steady deadline = kSent + seconds(10);
  struct Case {
    const char* name;
    HandlerResult answer;
    V budget;
    Steady now;
    const char* reason;  // "" : the answer stands
  };
  const Case cases[] = {
      {"within budget and time", HandlerResult::Complete(), V::within, kSent, ""},
      {"at the deadline", HandlerResult::Complete(), V::within, deadline, ""},
      {"past the deadline", HandlerResult::Complete(), V::within, deadline + milliseconds(1), "ttl_exceeded"},
      {"over tokens", HandlerResult::Complete(), V::tokens_exceeded, kSent, "budget_exceeded"},
      {"over cost and time", HandlerResult::Retry("x"), V::cost_exceeded, deadline + seconds(1),
       "budget_exceeded"},
      {"a retry in time stands", HandlerResult::Retry("provider_timeout"), V::within, kSent, "provider_timeout"},
      {"committed stands", HandlerResult::Committed(), V::tokens_exceeded, deadline + seconds(1), ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const HandlerResult r = AfterRun(c.answer, c.budget, policy::Usage{}, deadline, c.now);
    if (*c.reason == '\0') {
      EXPECT_EQ(r.kind, c.answer.kind);
      EXPECT_TRUE(r.reason.empty()) << r.error();
    } else {
      EXPECT_EQ(r.reason, c.reason);
    }
  }
}

TEST(Guards, AnswersMapToBusOutcomes) {
  const policy::BackoffParams backoff;
  struct Case {
    const char* name;
    HandlerResult answer;
    Outcome::Kind kind;
    bus::FailureKind failure;
    std::string error;
  };
  HandlerResult bad_child = HandlerResult::Complete();
  bad_child.publish.push_back({});  // no route: the bus would refuse it
  HandlerResult bad_result = HandlerResult::Complete("{not json");
  // JSON that PostgreSQL's jsonb refuses: it would fail the flush of every outcome in its batch.
  HandlerResult nul_result = HandlerResult::Complete(R"({"a": ["x\u0000y"]})");
  HandlerResult nul_event = HandlerResult::Complete("{}");
  nul_event.events.push_back({0, "noted", R"({"k\u0000": 1})"});
  HandlerResult escaped_backslash = HandlerResult::Complete(R"({"a": "\\u0000"})");  // the text \u0000: fine
  const Case cases[] = {
      {"complete", HandlerResult::Complete("{}"), Outcome::Kind::complete, {}, ""},
      {"retry", HandlerResult::Retry("provider_timeout", "slow"), Outcome::Kind::fail,
       bus::FailureKind::retryable, "provider_timeout: slow"},
      {"fail", HandlerResult::Fail("invalid_input"), Outcome::Kind::fail, bus::FailureKind::permanent,
       "invalid_input"},
      {"give back", HandlerResult::GiveBack("connection_lost", "x"), Outcome::Kind::fail,
       bus::FailureKind::infrastructure, "connection_lost: x"},
      {"committed", HandlerResult::Committed(), Outcome::Kind::committed, {}, ""},
      {"a child the bus refuses", bad_child, Outcome::Kind::fail, bus::FailureKind::permanent,
       "invalid_follow_up"},
      {"a result that is not JSON", bad_result, Outcome::Kind::fail, bus::FailureKind::permanent,
       "invalid_handler_result: result or event detail is not JSON (as PostgreSQL's jsonb takes it)"},
      {"a result with U+0000", nul_result, Outcome::Kind::fail, bus::FailureKind::permanent, "invalid_handler_result"},
      {"an event detail with U+0000", nul_event, Outcome::Kind::fail, bus::FailureKind::permanent,
       "invalid_handler_result"},
      {"an escaped backslash before u0000", escaped_backslash, Outcome::Kind::complete, {}, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Outcome o = ToOutcome(Message("{}"), c.answer, nullptr, std::nullopt, backoff, 0.5);
    EXPECT_EQ(o.kind, c.kind);
    EXPECT_EQ(o.lease().fence, 7);
    if (c.kind != Outcome::Kind::fail) continue;
    EXPECT_EQ(o.failure.kind, c.failure);
    EXPECT_EQ(o.failure.error.rfind(c.error, 0), 0u) << o.failure.error;
  }
}

TEST(Guards, UsageIsRecordedWithTheReasonAsItsOutcome) {
  const policy::Usage spent{10, 5, 0.01};
  const Outcome failed = ToOutcome(Message("{}"), HandlerResult::Fail("budget_exceeded", "tokens"), nullptr,
                                   spent, {}, 0.5);
  ASSERT_TRUE(failed.usage.has_value());
  EXPECT_EQ(failed.usage->outcome, "budget_exceeded");
  const Outcome done = ToOutcome(Message("{}"), HandlerResult::Complete(), nullptr, spent, {}, 0.5);
  ASSERT_TRUE(done.usage.has_value());
  EXPECT_EQ(done.usage->outcome, "completed");
  EXPECT_FALSE(ToOutcome(Message("{}"), HandlerResult::Complete(), nullptr, std::nullopt, {}, 0.5).usage);
}

TEST(Guards, ARetryWaitsTheHandlersDelayElseTheBackoff) {
  const policy::BackoffParams backoff;
  const Outcome own = ToOutcome(Message("{}"), HandlerResult::Retry("x", "", milliseconds(1234)), nullptr,
                                std::nullopt, backoff, 0.5);
  EXPECT_EQ(own.failure.retry_delay_ms, 1234);
  const Outcome scheduled = ToOutcome(Message("{}"), HandlerResult::Retry("x"), nullptr, std::nullopt, backoff, 0.5);
  EXPECT_EQ(scheduled.failure.retry_delay_ms, policy::NextBackoff(2, backoff, 0.5).count());
}

TEST(Guards, AThrownErrorBecomesANamedAnswer) {
  bus::ClaimedMessage m = Message("{}");
  UsageGuard usage(std::nullopt, std::stop_source{});
  HandlerContext ctx{m, {}, nullptr, std::nullopt, usage};
  const auto permanent = CallHandler([](HandlerContext&) -> HandlerResult { throw PermanentError("bad_input", "why"); }, ctx);
  EXPECT_EQ(permanent.kind, HandlerResult::Kind::fail);
  EXPECT_EQ(permanent.error(), "bad_input: why");
  const auto thrown = CallHandler([](HandlerContext&) -> HandlerResult { throw std::runtime_error("boom"); }, ctx);
  EXPECT_EQ(thrown.kind, HandlerResult::Kind::retry);
  EXPECT_EQ(thrown.error(), "handler_exception: boom");
}

}  // namespace
}  // namespace cogo::runtime
