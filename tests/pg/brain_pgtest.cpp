// cogo-orchestrator-brain over real HTTP and PostgreSQL: plan is side-effect free, execute is
// idempotent with the same Idempotency-Key, state and message views, JSON errors.
#include <nlohmann/json.hpp>

#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class BrainTest : public BusTest {
 protected:
  std::unique_ptr<Daemon> StartBrain() {
    return std::make_unique<Daemon>(
        "cogo-orchestrator-brain",
        std::vector<std::string>{"--routing", SourcePath("config/routing.example.json"), "--policy",
                                 SourcePath("config/policy.example.json"), "--poll-ms", "100"},
        ScratchFile("brain.log"));
  }
};

int64_t Rows(const char* table) { return Scalar<int64_t>(std::string("SELECT count(*) FROM ") + table); }

TEST_F(BrainTest, PlanIsSideEffectFree) {
  const auto brain = StartBrain();
  const auto r = HttpPost(brain->port(), "/api/orchestrator/plan",
                          R"({"tenant":"acme","intent":"chat","payload":{"message":"hi"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = json::parse(r.body);
  EXPECT_EQ(body["plan"]["target"]["service"], "gateway");
  EXPECT_EQ(body["plan"]["matched_by"], "rule");
  EXPECT_EQ(body["assignment"]["agent_id"], "chat-assistant");
  EXPECT_EQ(body["assignment"]["budget"]["maxTokens"], 4000);
  const auto unknown = HttpPost(brain->port(), "/api/orchestrator/plan", R"({"intent":"launch-rockets"})");
  EXPECT_EQ(unknown.status, 422);
  EXPECT_EQ(json::parse(unknown.body)["error"], "unknown_intent");
  const auto bad = HttpPost(brain->port(), "/api/orchestrator/plan", R"({"intent":)");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["error"], "malformed_json");
  EXPECT_EQ(Rows("agent_messages"), 0);
  EXPECT_EQ(Rows("bus_events"), 0);
  EXPECT_EQ(Rows("decisions"), 0);
}

TEST_F(BrainTest, ExecuteIsIdempotentWithTheSameKey) {
  const auto brain = StartBrain();
  const std::string body = R"({"tenant":"acme","intent":"chat","payload":{"message":"hi"}})";
  const auto first = HttpPost(brain->port(), "/api/orchestrator/execute", body, {{"Idempotency-Key", "k-1"}});
  const auto again = HttpPost(brain->port(), "/api/orchestrator/execute", body, {{"Idempotency-Key", "k-1"}});
  ASSERT_EQ(first.status, 202) << first.body;
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::parse(first.body)["ids"], json::parse(again.body)["ids"]);
  EXPECT_TRUE(json::parse(first.body)["created"].get<bool>());
  EXPECT_FALSE(json::parse(again.body)["created"].get<bool>());
  EXPECT_EQ(Rows("agent_messages"), 1);
  EXPECT_EQ(Rows("decisions"), 1);
  EXPECT_EQ(ScalarText("SELECT source FROM decisions"), "api");
  const auto id = json::parse(first.body)["ids"][0].get<int64_t>();
  const auto payload = json::parse(ScalarText("SELECT payload::text FROM agent_messages WHERE id = " + std::to_string(id)));
  EXPECT_EQ(payload["__assignment"]["target"]["role"], "chat");
  EXPECT_EQ(payload["input"]["message"], "hi");
  EXPECT_EQ(ScalarText("SELECT service || '/' || role FROM agent_messages"), "orchestrator/execute");

  // Without a key every call is new; a different key is a different request.
  EXPECT_EQ(HttpPost(brain->port(), "/api/orchestrator/execute", body).status, 202);
  EXPECT_EQ(HttpPost(brain->port(), "/api/orchestrator/execute", body, {{"Idempotency-Key", "k-2"}}).status, 202);
  EXPECT_EQ(Rows("agent_messages"), 3);
}

TEST_F(BrainTest, ExecuteTakesAPlanAndChecksItAgainstThePolicy) {
  const auto brain = StartBrain();
  auto plan = json::parse(HttpPost(brain->port(), "/api/orchestrator/plan", R"({"intent":"chat"})").body)["plan"];
  const auto ok = HttpPost(brain->port(), "/api/orchestrator/execute",
                           json{{"tenant", "acme"}, {"plan", plan}, {"payload", {{"message", "x"}}}}.dump());
  EXPECT_EQ(ok.status, 202) << ok.body;
  plan["model"] = "gpt-4o";  // the default policy rule does not allow it
  const auto refused = HttpPost(brain->port(), "/api/orchestrator/execute",
                                json{{"tenant", "acme"}, {"plan", plan}}.dump());
  EXPECT_EQ(refused.status, 422) << refused.body;
  EXPECT_EQ(json::parse(refused.body)["error"], "policy_model_not_allowed");
  const auto missing = HttpPost(brain->port(), "/api/orchestrator/execute", R"({"intent":"chat"})");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(json::parse(missing.body)["error"], "missing_field");
  EXPECT_EQ(Rows("agent_messages"), 1);
}

TEST_F(BrainTest, DecideWorkerHandsOffAndStateAndMessageViewsShowIt) {
  const auto brain = StartBrain();
  auto decide = Message(R"({"tenant":"tenant-a","intent":"summarize","payload":{"text":"a b c"}})",
                        "orchestrator", "decide");
  const auto id = bus_->Publish(decide).id;
  ASSERT_TRUE(WaitFor([&] {
    return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id)) == "done";
  }, 30s));
  const auto child = json::parse(ScalarText(
      "SELECT jsonb_build_object('parent', parent_id, 'corr', correlation_id, 'payload', payload)::text "
      "FROM agent_messages WHERE role = 'execute'"));
  EXPECT_EQ(child["parent"], id);
  EXPECT_EQ(child["corr"], std::to_string(id));
  EXPECT_EQ(child["payload"]["__assignment"]["agent_id"], "summarizer");
  EXPECT_EQ(child["payload"]["intent"], "summarize");
  EXPECT_EQ(ScalarText("SELECT rationale FROM decisions WHERE message_id = " + std::to_string(id)).empty(), false);

  const auto state = HttpGet(brain->port(), "/api/orchestrator/state");
  ASSERT_EQ(state.status, 200) << state.body;
  const auto s = json::parse(state.body);
  ASSERT_EQ(s["routes"].size(), 1u) << s["routes"];
  EXPECT_EQ(s["routes"][0]["role"], "execute");
  EXPECT_EQ(s["routes"][0]["depth"], 1);
  EXPECT_TRUE(s["workers"].is_array());
  EXPECT_FALSE(s["workers"].empty());
  EXPECT_TRUE(s["routing"]["rules"].contains("chat"));
  EXPECT_TRUE(s["policy"].contains("prices"));
  EXPECT_TRUE(s["recent_failures"].is_array());

  const auto view = HttpGet(brain->port(), "/api/messages/" + std::to_string(id));
  ASSERT_EQ(view.status, 200);
  const auto v = json::parse(view.body);
  EXPECT_EQ(v["message"]["id"], id);
  EXPECT_EQ(v["status"], "running");  // the execute child is still queued
  EXPECT_EQ(v["messages"].size(), 2u);
  EXPECT_EQ(HttpGet(brain->port(), "/api/messages/424242").status, 404);
}

}  // namespace
}  // namespace cogo::testing
