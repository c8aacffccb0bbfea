// The executor's pure decisions: which messages are refused before any database read, the
// admission verdict as a handler result (hand-off or named refusal with its audit events), and
// the retry schedule of a transient failure.
#include "cogo/executor/dispatcher.h"

#include <gtest/gtest.h>

#include <functional>

#include <nlohmann/json.hpp>

#include "log_sink.h"

namespace cogo::executor {
namespace {

using nlohmann::json;
using runtime::HandlerResult;
using std::chrono::milliseconds;

constexpr const char* kPolicy = R"({
  "default": {
    "allowed_models": ["offline-deterministic"], "allowed_versions": ["1.0.0"],
    "max_cost_usd": 1.0, "max_tokens": 10000, "default_ttl_ms": 60000, "max_ttl_ms": 600000,
    "max_attempts": 3, "backoff": {"base_ms": 50, "cap_ms": 80, "multiplier": 2.0, "jitter": 0.0}},
  "routes": {"gateway/chat": {"max_attempts": 4}},
  "prices": {"offline-deterministic": {"usd_per_1k_input": 0, "usd_per_1k_output": 0}},
  "tenants": {"default_daily_cap_usd": 10.0}
})";

const policy::PolicyTable& Table() {
  static const policy::PolicyTable table = [] {
    auto r = policy::ParsePolicyTable(kPolicy);
    if (!r.ok()) throw std::runtime_error(r.error().ToString());
    return std::move(r).table();
  }();
  return table;
}

constexpr double kCreatedEpoch = 1700000000.0;
const policy::TimePoint kNow =
    policy::TimePoint(milliseconds(static_cast<int64_t>(kCreatedEpoch * 1000) + 1000));

json Envelope() {
  return {{"agent_id", "agent-x"}, {"version", "1.0.0"}, {"model", "offline-deterministic"},
          {"budget", {{"maxCostUsd", 0.5}, {"maxTokens", 1000}}}, {"ttl_ms", 60000},
          {"target", {{"service", "gateway"}, {"role", "chat"}}}};
}

// `deadline_after_s`: the TTL deadline the bus stored, seconds after created_at (nullopt: none).
bus::ClaimedMessage Message(const std::string& payload, int attempt = 1,
                            std::optional<double> deadline_after_s = 60.0) {
  bus::ClaimedMessage m;
  m.lease = {42, "executor-1", attempt};
  m.route = {kService, kRole, 2};
  m.tenant = "tenant-a";
  m.payload_json = payload;
  m.priority = 3;
  m.max_attempts = 3;
  m.correlation_id = "req-1";
  m.created_at_epoch = kCreatedEpoch;
  if (deadline_after_s) m.ttl_deadline_epoch = kCreatedEpoch + *deadline_after_s;
  return m;
}

std::string Payload(const std::function<void(json&)>& edit = {}) {
  json p = {{"__assignment", Envelope()}, {"intent", "chat"}, {"input", {{"q", "hi"}}}};
  if (edit) edit(p["__assignment"]);
  return p.dump();
}

std::string EventNames(const HandlerResult& r) {
  std::string out;
  for (const auto& e : r.events) out += (out.empty() ? "" : " ") + e.event;
  return out;
}

// Prepare + Decide, as the handler runs them.
HandlerResult Judge(const bus::ClaimedMessage& m, TenantCommitment committed = {}, double cap = 10.0) {
  auto prepared = Prepare(m, Table());
  if (auto* refused = std::get_if<HandlerResult>(&prepared)) return *refused;
  return Decide(m, std::get<ExecuteRequest>(prepared), committed, cap, kNow);
}

TEST(Executor, AdmittedHandsOffTheSamePayloadToTheTargetRoute) {
  const auto m = Message(Payload());
  const HandlerResult r = Judge(m);
  ASSERT_EQ(r.kind, HandlerResult::Kind::complete) << r.error();
  ASSERT_EQ(r.publish.size(), 1u);
  const bus::PublishRequest& p = r.publish[0];
  EXPECT_EQ(p.service, "gateway");
  EXPECT_EQ(p.role, "chat");
  EXPECT_EQ(p.shard, 2);
  EXPECT_EQ(p.tenant, "tenant-a");
  EXPECT_EQ(p.payload_json, m.payload_json);
  EXPECT_EQ(p.priority, 3);
  EXPECT_EQ(p.max_attempts, 4) << "the route rule's max_attempts";
  EXPECT_EQ(p.idempotency_key, "execute:42");
  EXPECT_EQ(p.correlation_id, "req-1");
  EXPECT_TRUE(r.events.empty()) << "execute_enqueued comes from the 002 trigger";
  EXPECT_EQ(json::parse(r.result_json)["rule"], "route:gateway/chat");
}

TEST(Executor, RefusalsAreNamedPermanentAndAudited) {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    TenantCommitment committed;
    const char* reason;
    std::optional<double> deadline_after_s = 60.0;  // the stored deadline; now is 1 s after created_at
  };
  const Case cases[] = {
      {"no target", [](json& a) { a.erase("target"); }, {}, "assignment_invalid"},
      {"tokens not an integer", [](json& a) { a["budget"]["maxTokens"] = 1.5; }, {}, "assignment_invalid"},
      {"over budget cap", [](json& a) { a["budget"]["maxCostUsd"] = 2.0; }, {}, "budget_over_cap"},
      {"model", [](json& a) { a["model"] = "gpt-4o"; }, {}, "model_not_allowed"},
      {"version", [](json& a) { a["version"] = "2.0.0"; }, {}, "version_not_allowed"},
      {"ttl over max", [](json& a) { a["ttl_ms"] = 600001; }, {}, "ttl_over_max"},
      {"the stored deadline is now", [](json&) {}, {}, "ttl_expired", 1.0},
      // The stored deadline decides, not created_at + ttl_ms (60 s here): the executor has no TTL
      // rule of its own (an issued_at before created_at moves it, in the database).
      {"the stored deadline passed", [](json&) {}, {}, "ttl_expired", 0.5},
      {"no stored deadline", [](json&) {}, {}, "assignment_invalid", std::nullopt},
      {"spent today", [](json&) {}, {9.6, 0.0}, "tenant_budget_exhausted"},
      {"reserved by work in flight", [](json&) {}, {5.0, 4.6}, "tenant_budget_exhausted"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const HandlerResult r = Judge(Message(Payload(c.edit), 1, c.deadline_after_s), c.committed);
    ASSERT_EQ(r.kind, HandlerResult::Kind::fail);
    EXPECT_EQ(r.reason, c.reason) << r.error();
    EXPECT_FALSE(r.detail.empty());
    EXPECT_TRUE(r.publish.empty());
    EXPECT_EQ(EventNames(r), "policy_violation execute_failed");
    EXPECT_EQ(json::parse(r.events[1].detail_json)["reason"], c.reason);
  }
  // Reaching the cap exactly, with spend and reservations together, is admitted; so is a stored
  // deadline later than created_at + ttl_ms.
  EXPECT_EQ(Judge(Message(Payload()), {5.0, 4.5}).kind, HandlerResult::Kind::complete);
  EXPECT_EQ(Judge(Message(Payload([](json& a) { a["ttl_ms"] = 500; }), 1, 2.0)).kind, HandlerResult::Kind::complete);
}

TEST(Executor, PayloadWithoutAssignmentIsRefused) {
  for (const char* payload : {R"({"intent":"x"})", "[1,2]", "{not json"}) {
    SCOPED_TRACE(payload);
    const HandlerResult r = Judge(Message(payload));
    ASSERT_EQ(r.kind, HandlerResult::Kind::fail);
    EXPECT_EQ(r.reason, "assignment_invalid") << r.error();
    EXPECT_FALSE(r.detail.empty());
  }
}

TEST(Executor, TransientFailureFollowsTheRuleBackoffUntilTheLastAttempt) {
  const auto& rule = Table().Lookup("agent-x", policy::Target{"gateway", "chat"});
  struct Case {
    int attempt;
    int64_t delay_ms;  // -1: last attempt
  };
  for (const Case c : {Case{1, 50}, Case{2, 80}, Case{3, -1}}) {
    SCOPED_TRACE(c.attempt);
    const HandlerResult r =
        TransientFailure(Message(Payload(), c.attempt), rule, "tenant_spend_unavailable", "x\n", kNow, 0.5);
    ASSERT_EQ(r.kind, HandlerResult::Kind::retry);
    EXPECT_EQ(r.error(), "tenant_spend_unavailable: x");
    ASSERT_EQ(r.events.size(), 1u);
    const json detail = json::parse(r.events[0].detail_json);
    if (c.delay_ms < 0) {
      EXPECT_EQ(r.events[0].event, "execute_failed");
      EXPECT_EQ(detail["reason"], "attempts_exhausted");
    } else {
      EXPECT_EQ(r.events[0].event, "execute_retry");
      EXPECT_EQ(r.retry_delay, milliseconds(c.delay_ms));
      EXPECT_EQ(detail["delay_ms"], c.delay_ms);
    }
  }
}

// The handler's log is what an operator reads: one line per refusal, naming the reason, and no
// string from the payload (a caller's credential, or one put where a budget belongs).
TEST(Executor, RefusalIsLoggedOnceWithItsReasonAndNeverTheSecret) {
  const std::string secret = "sk-live-0123456789secret";
  auto sink = std::make_shared<testing::LogSink>();
  auto handler = MakeExecutorHandler({"", std::make_shared<const policy::PolicyTable>(Table())},
                                     testing::MakeTestLogger("executor", sink));
  const auto message = Message(Payload([&](json& a) {
    a["agent_id"] = secret;  // valid, read first, never echoed
    a["budget"] = secret;    // a wrong type: the refusal names the path and the type only
  }));
  runtime::UsageGuard usage(std::nullopt, std::stop_source{});
  runtime::HandlerContext ctx{message, {}, nullptr, std::nullopt, usage};
  const HandlerResult r = handler(ctx);
  ASSERT_EQ(r.kind, HandlerResult::Kind::fail);
  EXPECT_EQ(r.error().find(secret), std::string::npos) << r.error();
  EXPECT_EQ(sink->Lines().size(), 1u) << sink->Text();
  EXPECT_EQ(sink->Count("warning execute 42 refused: assignment_invalid: budget: wrong_type"), 1u)
      << sink->Text();
  EXPECT_EQ(sink->Count(secret), 0u) << sink->Text();
}

}  // namespace
}  // namespace cogo::executor
