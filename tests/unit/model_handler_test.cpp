#include <gtest/gtest.h>

#include <memory>

#include "cogo/runtime/model_handler.h"
#include "log_sink.h"

namespace cogo::runtime {
namespace {

using providers::ProviderError;
using providers::ProviderErrorKind;

TEST(ModelHandler, ProviderErrorsAsTheMessagesTableOfCases) {
  struct Case {
    ProviderErrorKind kind;
    HandlerResult::Kind outcome;
    const char* reason;
  };
  const Case cases[] = {
      {ProviderErrorKind::kRateLimited, HandlerResult::Kind::retry, "provider_rate_limited"},
      {ProviderErrorKind::kServerError, HandlerResult::Kind::retry, "provider_server_error"},
      {ProviderErrorKind::kTimeout, HandlerResult::Kind::retry, "provider_timeout"},
      {ProviderErrorKind::kUnreachable, HandlerResult::Kind::retry, "provider_unreachable"},
      {ProviderErrorKind::kBadResponse, HandlerResult::Kind::fail, "provider_bad_response"},
      {ProviderErrorKind::kClientError, HandlerResult::Kind::fail, "provider_client_error"},
      {ProviderErrorKind::kCancelled, HandlerResult::Kind::fail, "provider_cancelled"},
  };
  for (const auto& c : cases) {
    const ProviderError e(c.kind, "HTTP 400: model unknown", 400);
    const auto r = FromProviderError(e);
    EXPECT_EQ(r.kind, c.outcome) << c.reason;
    EXPECT_EQ(r.reason, c.reason);
    EXPECT_EQ(r.detail, e.what()) << c.reason;
    EXPECT_FALSE(r.retry_delay.has_value()) << c.reason << ": the bus's backoff applies";
  }
}

TEST(ModelHandler, AProviderFailureIsLoggedOnceWithItsMessageAndKind) {
  auto sink = std::make_shared<testing::LogSink>();
  bus::ClaimedMessage message;
  message.lease.message_id = 42;
  UsageGuard guard(std::nullopt, std::stop_source());
  HandlerContext ctx{message, {}, nullptr, std::nullopt, guard};
  const ProviderError e(ProviderErrorKind::kTimeout, "read timed out");
  const auto r = ProviderFailure(ctx, e, *testing::MakeTestLogger("model", sink));
  EXPECT_EQ(r.error(), "provider_timeout: " + std::string(e.what()));
  EXPECT_EQ(sink->Count("warning message 42: provider timeout: " + std::string(e.what())), 1u) << sink->Text();
  EXPECT_EQ(sink->Lines().size(), 1u) << sink->Text();
}

TEST(ModelHandler, PricedModelRefusesWhatCannotBeMetered) {
  auto parsed = policy::ParsePolicyTable(R"({
    "default": {"allowed_models": ["*"], "allowed_versions": ["*"], "max_cost_usd": 1, "max_tokens": 1000,
                "default_ttl_ms": 1000, "max_ttl_ms": 2000, "max_attempts": 3},
    "prices": {"priced": {"usd_per_1k_input": 0.1, "usd_per_1k_output": 0.2}},
    "tenants": {"default_daily_cap_usd": 10}
  })");
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  const auto table = std::move(parsed).table();
  bus::ClaimedMessage message;
  UsageGuard guard(std::nullopt, std::stop_source());
  struct Case {
    const char* name;
    const char* model;  // null: no assignment
    const char* refusal;  // null: the model is returned
  };
  const Case cases[] = {
      {"no assignment", nullptr, "assignment_missing"},
      {"a model without a price", "mystery", "model_not_priced"},
      {"a priced model", "priced", nullptr},
  };
  for (const auto& c : cases) {
    policy::AssignmentEnvelope a;
    if (c.model != nullptr) a.model = c.model;
    HandlerContext ctx{message, {}, c.model != nullptr ? &a : nullptr, std::nullopt, guard};
    const auto priced = PricedModel(ctx, table);
    if (c.refusal == nullptr) {
      ASSERT_TRUE(std::holds_alternative<std::string>(priced)) << c.name;
      EXPECT_EQ(std::get<std::string>(priced), c.model);
    } else {
      ASSERT_TRUE(std::holds_alternative<HandlerResult>(priced)) << c.name;
      EXPECT_EQ(std::get<HandlerResult>(priced).kind, HandlerResult::Kind::fail) << c.name;
      EXPECT_EQ(std::get<HandlerResult>(priced).reason, c.refusal) << c.name;
    }
  }
}

}  // namespace
}  // namespace cogo::runtime
