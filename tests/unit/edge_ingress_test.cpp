#include <gtest/gtest.h>

#include <string>

#include "cogo/bus/keys.h"
#include "cogo/edge/ingress.h"
#include "cogo/edge/rate_limit.h"

namespace cogo::edge {
namespace {

struct BodyCase {
  const char* name;
  std::string body;
  std::string content_type;
  int status;  // 0 = accepted
  const char* error;
};

TEST(EdgeIngress, BodyMatrix) {
  IngressLimits limits;
  limits.max_body_bytes = 256;
  limits.max_depth = 4;
  const std::vector<BodyCase> cases = {
      {"good", R"({"tenant":"acme","intent":"chat","payload":{"message":"hi"}})", "", 0, ""},
      {"good without payload", R"({"tenant":"acme","intent":"chat"})", "application/json; charset=utf-8", 0, ""},
      {"oversize", R"({"tenant":"acme","intent":"chat","payload":{"m":")" + std::string(300, 'x') + "\"}}", "", 413, "body_too_large"},
      {"text/plain", R"({"tenant":"acme","intent":"chat"})", "text/plain", 415, "unsupported_media_type"},
      {"malformed", R"({"tenant":"acme",)", "", 400, "malformed_json"},
      {"empty", "", "", 400, "malformed_json"},
      {"deep", R"({"tenant":"acme","intent":"chat","payload":{"a":{"b":{"c":{"d":1}}}}})", "", 400, "too_deep"},
      {"brackets in strings do not nest", R"({"tenant":"acme","intent":"chat","payload":{"m":"[[[[[{{{{"}})", "", 0, ""},
      {"array body", R"([1,2])", "", 400, "not_an_object"},
      {"missing tenant", R"({"intent":"chat"})", "", 400, "missing_field"},
      {"null intent", R"({"tenant":"acme","intent":null})", "", 400, "missing_field"},
      {"tenant number", R"({"tenant":7,"intent":"chat"})", "", 400, "wrong_type"},
      {"payload string", R"({"tenant":"acme","intent":"chat","payload":"hi"})", "", 400, "wrong_type"},
      {"payload array", R"({"tenant":"acme","intent":"chat","payload":[1]})", "", 400, "wrong_type"},
      {"bad tenant chars", R"({"tenant":"ac me","intent":"chat"})", "", 400, "invalid_field"},
      {"upper intent", R"({"tenant":"acme","intent":"Chat"})", "", 400, "invalid_field"},
      {"empty intent", R"({"tenant":"acme","intent":""})", "", 400, "invalid_field"},
      {"unknown field", R"({"tenant":"acme","intent":"chat","extra":1})", "", 400, "unknown_field"},
  };
  for (const auto& c : cases) {
    const auto result = ParseIngress(c.body, c.content_type, limits);
    if (c.status == 0) {
      EXPECT_TRUE(result.ok()) << c.name << ": " << (result.ok() ? "" : result.rejection().error);
    } else {
      ASSERT_FALSE(result.ok()) << c.name;
      EXPECT_EQ(result.rejection().status, c.status) << c.name;
      EXPECT_EQ(result.rejection().error, c.error) << c.name;
      EXPECT_FALSE(result.rejection().message.empty()) << c.name;
    }
  }
}

TEST(EdgeIngress, KeepsThePayloadAndDefaultsItToAnObject) {
  auto r = ParseIngress(R"({"tenant":"t-1","intent":"chat","payload":{"message":"hi"}})", "", {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.request().tenant, "t-1");
  EXPECT_EQ(r.request().intent, "chat");
  EXPECT_EQ(r.request().payload_json, R"({"message":"hi"})");
  auto bare = ParseIngress(R"({"tenant":"t","intent":"chat"})", "", {});
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare.request().payload_json, "{}");
}

TEST(BusKeys, ShardIsStableAndInRange) {
  EXPECT_EQ(bus::ShardForTenant("acme", 1), 0);
  EXPECT_EQ(bus::ShardForTenant("acme", 0), 0);
  // FNV-1a 64 of "acme" is fixed across processes and releases.
  EXPECT_EQ(bus::ShardForTenant("acme", 16), bus::ShardForTenant(std::string("ac") + "me", 16));
  for (const char* t : {"a", "b", "tenant-42", "acme"}) {
    const int s = bus::ShardForTenant(t, 7);
    EXPECT_GE(s, 0);
    EXPECT_LT(s, 7);
  }
  EXPECT_NE(bus::ShardForTenant("a", 1024), bus::ShardForTenant("b", 1024));
}

TEST(BusKeys, IdempotencyKeyShape) {
  EXPECT_TRUE(bus::ValidIdempotencyKey("req-1"));
  EXPECT_FALSE(bus::ValidIdempotencyKey(""));
  EXPECT_FALSE(bus::ValidIdempotencyKey("has space"));
  EXPECT_FALSE(bus::ValidIdempotencyKey(std::string(201, 'k')));
}

TEST(RateLimit, BucketTableOfCases) {
  const TokenBucketParams p{2.0, 3.0};  // 2/s, burst 3
  struct Step {
    double at;
    bool allowed;
    double retry_after;
  };
  const std::vector<Step> steps = {
      {0.0, true, 0},   {0.0, true, 0},   {0.0, true, 0},  // the burst
      {0.0, false, 0.5},                                   // empty: one token in 0.5 s
      {0.25, false, 0.25},                                 // half a token refilled
      {0.5, true, 0},                                      // one token
      {10.0, true, 0},  {10.0, true, 0}, {10.0, true, 0},  // refilled to burst, not beyond
      {10.0, false, 0.5},
      {5.0, false, 0.5},  // time going backwards refills nothing
  };
  std::optional<BucketState> bucket;
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto r = TakeToken(bucket, p, steps[i].at);
    EXPECT_EQ(r.allowed, steps[i].allowed) << "step " << i;
    EXPECT_NEAR(r.retry_after_s, steps[i].retry_after, 1e-9) << "step " << i;
    bucket = r.next;
  }
}

TEST(RateLimit, RetryAfterIsWholeSecondsAtLeastOne) {
  EXPECT_EQ(RetryAfterSeconds(0.01), 1);
  EXPECT_EQ(RetryAfterSeconds(1.0), 1);
  EXPECT_EQ(RetryAfterSeconds(1.2), 2);
}

TEST(RateLimit, ZeroRateDisablesLimiting) {
  std::optional<BucketState> bucket;
  for (int i = 0; i < 100; ++i) {
    const auto r = TakeToken(bucket, {0.0, 1.0}, 0.0);
    EXPECT_TRUE(r.allowed);
    bucket = r.next;
  }
}

TEST(RateLimit, LimiterIsPerTenantAndBounded) {
  RateLimiter limiter({1.0, 1.0}, 2);
  EXPECT_TRUE(limiter.Admit("a", 0).allowed);
  EXPECT_FALSE(limiter.Admit("a", 0.1).allowed);
  EXPECT_TRUE(limiter.Admit("b", 0.1).allowed);  // another tenant has its own bucket
  EXPECT_EQ(limiter.tracked(), 2u);
  // At capacity, refilled buckets are forgotten to make room.
  EXPECT_TRUE(limiter.Admit("c", 5.0).allowed);
  EXPECT_LE(limiter.tracked(), 2u);
}

}  // namespace
}  // namespace cogo::edge
