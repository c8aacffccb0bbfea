// cogo-gateway-chat against a local server speaking the OpenAI wire format: the assignment's
// model is asked, the API key comes from the environment and is never logged, usage is priced
// from the policy table and recorded, and a budget overrun fails the message for good.
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "fake_openai.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string ChatPayload(int64_t max_tokens, const std::string& model = "gpt-4o-mini") {
  return json{{"__assignment", {{"agent_id", "chat-assistant"}, {"version", "1.0.0"}, {"model", model},
                                {"budget", {{"maxCostUsd", 0.05}, {"maxTokens", max_tokens}}},
                                {"ttl_ms", 60000}, {"target", {{"service", "gateway"}, {"role", "chat"}}}}},
              {"intent", "chat"},
              {"input", {{"message", "say hello"}}}}
      .dump();
}

std::string Status(int64_t id) {
  return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id));
}

TEST_F(BusTest, GatewayChatUsesTheAssignmentModelAndMetersUsage) {
  FakeOpenAI fake;
  fake.Play(ChatReplies([](const json&) { return "hello from the fake"; }, 1200, 500));
  setenv("COGO_PROVIDER_API_KEY", "sk-test-never-logged", 1);
  const auto log = ScratchFile("gateway.log");
  const auto ok = bus_->Publish(Message(ChatPayload(4000), "gateway", "chat")).id;
  const auto over = bus_->Publish(Message(ChatPayload(1000), "gateway", "chat")).id;
  const auto bare = bus_->Publish(Message(R"({"input":{"message":"hi"}})", "gateway", "chat")).id;
  {
    WorkerDaemon chat("cogo-gateway-chat",
                      {"--policy", SourcePath("config/policy.example.json"), "--poll-ms", "100",
                       "--provider-base-url", fake.base_url(),
                       "--provider-max-retries", "0", "--max-tokens", "256"},
                      log);
    ASSERT_TRUE(WaitFor([&] {
      return Status(ok) != "queued" && Status(ok) != "running" && Status(over) != "queued" &&
             Status(over) != "running" && Status(bare) != "queued" && Status(bare) != "running";
    }, 30s)) << "see " << log;
  }
  unsetenv("COGO_PROVIDER_API_KEY");

  ASSERT_EQ(Status(ok), "done") << ScalarText("SELECT last_error FROM agent_messages WHERE id = " + std::to_string(ok));
  const auto result = json::parse(ScalarText("SELECT result::text FROM agent_messages WHERE id = " + std::to_string(ok)));
  EXPECT_EQ(result["reply"], "hello from the fake");
  EXPECT_EQ(result["model"], "gpt-4o-mini");
  EXPECT_EQ(result["usage"]["input_tokens"], 1200);
  EXPECT_EQ(result["usage"]["output_tokens"], 500);
  // gpt-4o-mini: 0.00015 / 1k in, 0.0006 / 1k out.
  EXPECT_NEAR(result["usage"]["cost_usd"].get<double>(), 1.2 * 0.00015 + 0.5 * 0.0006, 1e-12);
  EXPECT_EQ(ScalarText("SELECT result_snippet FROM agent_messages WHERE id = " + std::to_string(ok)), "hello from the fake");

  const auto requests = fake.bodies();
  ASSERT_GE(requests.size(), 2u);
  for (const auto& r : requests) {
    EXPECT_EQ(r["model"], "gpt-4o-mini");
    EXPECT_LE(r["max_tokens"].get<int>(), 256);  // capped by --max-tokens (and the budget)
    EXPECT_EQ(r["messages"].back()["content"], "say hello");
  }
  EXPECT_EQ(fake.seen().back().authorization, "Bearer sk-test-never-logged");

  // 1700 tokens against maxTokens 1000: budget_exceeded, never retried, the usage recorded.
  EXPECT_EQ(Status(over), "failed");
  EXPECT_EQ(ScalarText("SELECT last_error FROM agent_messages WHERE id = " + std::to_string(over)).rfind("budget_exceeded", 0), 0u);
  EXPECT_EQ(Scalar<int>("SELECT attempts FROM agent_messages WHERE id = " + std::to_string(over)), 1);
  EXPECT_EQ(ScalarText("SELECT string_agg(outcome || ':' || (input_tokens + output_tokens), ',' ORDER BY message_id) FROM message_usage"),
            "completed:1700,budget_exceeded:1700");
  // No assignment: refused before any model call.
  EXPECT_EQ(Status(bare), "failed");
  EXPECT_EQ(ScalarText("SELECT last_error FROM agent_messages WHERE id = " + std::to_string(bare)).find("assignment_missing"), 0u);
  EXPECT_EQ(requests.size(), 2u);

  std::stringstream text;
  text << std::ifstream(log).rdbuf();
  EXPECT_EQ(text.str().find("sk-test-never-logged"), std::string::npos);
}

TEST_F(BusTest, GatewayChatOfflineProviderAnswersDeterministically) {
  const auto log = ScratchFile("gateway-offline.log");
  const auto id = bus_->Publish(Message(ChatPayload(4000, "offline-deterministic"), "gateway", "chat")).id;
  WorkerDaemon chat("cogo-gateway-chat", {"--policy", SourcePath("config/policy.example.json"), "--poll-ms", "100"}, log);
  ASSERT_TRUE(WaitFor([&] { return Status(id) == "done" || Status(id) == "failed"; }, 30s)) << log;
  ASSERT_EQ(Status(id), "done") << ScalarText("SELECT last_error FROM agent_messages WHERE id = " + std::to_string(id));
  const auto result = json::parse(ScalarText("SELECT result::text FROM agent_messages WHERE id = " + std::to_string(id)));
  EXPECT_EQ(result["reply"].get<std::string>().rfind("[offline-deterministic] reply to: say hello", 0), 0u);
  EXPECT_EQ(result["usage"]["cost_usd"], 0.0);
}

}  // namespace
}  // namespace cogo::testing
