#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cogo/gateway/chat.h"
#include "cogo/log/logging.h"

namespace cogo::gateway {
namespace {

using nlohmann::json;

TEST(GatewayChat, BuildChatRequestTableOfCases) {
  struct Case {
    const char* name;
    std::string payload;
    size_t messages;  // 0: refused with invalid_input
  };
  const std::vector<Case> cases = {
      {"message", R"({"input":{"message":"hi"}})", 1},
      {"prompt", R"({"input":{"prompt":"hi"}})", 1},
      {"top-level text", R"({"text":"hi"})", 1},
      {"messages", R"({"input":{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}})", 2},
      {"empty messages", R"({"input":{"messages":[]}})", 0},
      {"bad role", R"({"input":{"messages":[{"role":"tool","content":"x"}]}})", 0},
      {"content not a string", R"({"input":{"messages":[{"role":"user","content":1}]}})", 0},
      {"nothing to say", R"({"input":{"other":1}})", 0},
      {"input not an object", R"({"input":"hi"})", 0},
      {"not JSON", "{", 0},
  };
  for (const auto& c : cases) {
    const auto r = BuildChatRequest(c.payload, "m", 32, {});
    if (c.messages == 0) {
      ASSERT_TRUE(std::holds_alternative<ChatInputError>(r)) << c.name;
      EXPECT_EQ(std::get<ChatInputError>(r).reason, "invalid_input") << c.name;
    } else {
      ASSERT_TRUE(std::holds_alternative<providers::ChatRequest>(r)) << c.name;
      const auto& req = std::get<providers::ChatRequest>(r);
      EXPECT_EQ(req.messages.size(), c.messages) << c.name;
      EXPECT_EQ(req.model, "m");
      EXPECT_EQ(req.max_tokens, 32);
    }
  }
  ChatOptions with_system;
  with_system.system_prompt = "be brief";
  with_system.max_input_bytes = 4;
  const auto r = BuildChatRequest(R"({"input":{"message":"hi"}})", "m", 8, with_system);
  ASSERT_TRUE(std::holds_alternative<providers::ChatRequest>(r));
  EXPECT_EQ(std::get<providers::ChatRequest>(r).messages.front().role, "system");
  EXPECT_TRUE(std::holds_alternative<ChatInputError>(
      BuildChatRequest(R"({"input":{"message":"too long"}})", "m", 8, with_system)));
}

class FailingProvider final : public providers::ModelProvider {
 public:
  explicit FailingProvider(providers::ProviderErrorKind kind) : kind_(kind) {}
  providers::ChatResponse Chat(const providers::ChatRequest&) override {
    throw providers::ProviderError(kind_, "fake failure", 0, 1);
  }
  providers::EmbedResponse Embed(const providers::EmbedRequest&) override { return {}; }
  std::string_view name() const override { return "failing"; }

 private:
  providers::ProviderErrorKind kind_;
};

runtime::HandlerResult RunHandler(providers::ProviderErrorKind kind, const std::string& model = "gpt-4o-mini") {
  auto policy = policy::ParsePolicyTable(R"({
    "default": {"allowed_models": ["*"], "allowed_versions": ["*"], "max_cost_usd": 1, "max_tokens": 1000,
                "default_ttl_ms": 1000, "max_ttl_ms": 2000, "max_attempts": 3},
    "prices": {"gpt-4o-mini": {"usd_per_1k_input": 0.1, "usd_per_1k_output": 0.2}},
    "tenants": {"default_daily_cap_usd": 10}
  })");
  EXPECT_TRUE(policy.ok()) << policy.error().ToString();
  auto table = std::make_shared<const policy::PolicyTable>(std::move(policy).table());
  auto handler = MakeChatHandler(std::make_shared<FailingProvider>(kind), table, {}, log::Get("test"));
  bus::ClaimedMessage message;
  message.payload_json = R"({"input":{"message":"hi"}})";
  policy::AssignmentEnvelope a;
  a.agent_id = "a";
  a.version = "1";
  a.model = model;
  a.budget = {1.0, 100};
  a.ttl = std::chrono::milliseconds(1000);
  runtime::UsageGuard guard(a.budget, std::stop_source());
  runtime::HandlerContext ctx{message, {}, &a, std::nullopt, guard};
  return handler(ctx);
}

TEST(GatewayChat, ProviderErrorsAreRetriedOnlyWhenTransient) {
  EXPECT_EQ(RunHandler(providers::ProviderErrorKind::kRateLimited).kind, runtime::HandlerResult::Kind::retry);
  EXPECT_EQ(RunHandler(providers::ProviderErrorKind::kUnreachable).kind, runtime::HandlerResult::Kind::retry);
  const auto client = RunHandler(providers::ProviderErrorKind::kClientError);
  EXPECT_EQ(client.kind, runtime::HandlerResult::Kind::fail);
  EXPECT_EQ(client.reason, "provider_client_error") << client.error();
  EXPECT_EQ(RunHandler(providers::ProviderErrorKind::kBadResponse).kind, runtime::HandlerResult::Kind::fail);
  const auto unpriced = RunHandler(providers::ProviderErrorKind::kRateLimited, "mystery-model");
  EXPECT_EQ(unpriced.kind, runtime::HandlerResult::Kind::fail);
  EXPECT_EQ(unpriced.reason, "model_not_priced") << unpriced.error();
}

}  // namespace
}  // namespace cogo::gateway
