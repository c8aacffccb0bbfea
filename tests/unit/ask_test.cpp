// The brain's REST request bodies: the same refusal codes as the edge's ingress.
#include "orchestrator/ask.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cogo::orchestrator {
namespace {

struct AskCase {
  const char* name;
  std::string body;
  bool execute;       // tenant required, plan allowed
  const char* error;  // "" = accepted
};

TEST(Ask, BodyMatrix) {
  const std::vector<AskCase> cases = {
      {"plan by intent", R"({"intent":"chat","payload":{"m":"hi"}})", false, ""},
      {"execute by intent", R"({"tenant":"Acme","intent":"chat"})", true, ""},
      {"execute by plan", R"({"tenant":"acme","plan":{"intent":"chat"}})", true, ""},
      {"too large", R"({"intent":")" + std::string(300, 'x') + "\"}", false, "body_too_large"},
      {"malformed", R"({"intent":)", false, "malformed_json"},
      {"too deep", R"({"intent":"chat","payload":)" + std::string(20, '[') + std::string(20, ']') + "}", false, "too_deep"},
      {"array body", "[]", false, "not_an_object"},
      {"duplicate key", R"({"intent":"chat","intent":"other"})", false, "duplicate_field"},
      {"intent missing", R"({"payload":{}})", false, "missing_field"},
      {"execute without tenant", R"({"intent":"chat"})", true, "missing_field"},
      {"execute without intent or plan", R"({"tenant":"acme"})", true, "missing_field"},
      {"intent and plan", R"({"tenant":"acme","intent":"chat","plan":{}})", true, "invalid_field"},
      {"plan on the plan endpoint", R"({"plan":{}})", false, "unknown_field"},
      {"unknown key", R"({"intent":"chat","admin":true})", false, "unknown_field"},
      {"intent number", R"({"intent":7})", false, "wrong_type"},
      {"payload string", R"({"intent":"chat","payload":"hi"})", false, "wrong_type"},
      {"plan array", R"({"tenant":"acme","plan":[]})", true, "wrong_type"},
      {"upper-case intent", R"({"intent":"Chat"})", false, "invalid_field"},
      {"empty tenant", R"({"tenant":"","intent":"chat"})", true, "invalid_field"},
  };
  for (const auto& c : cases) {
    const auto parsed = ParseAsk(c.body, c.execute, c.execute, 256);
    if (*c.error == '\0') {
      EXPECT_TRUE(std::holds_alternative<Ask>(parsed))
          << c.name << ": " << std::get<AskError>(parsed).error;
      continue;
    }
    ASSERT_TRUE(std::holds_alternative<AskError>(parsed)) << c.name;
    EXPECT_EQ(std::get<AskError>(parsed).error, c.error) << c.name;
    EXPECT_EQ(std::get<AskError>(parsed).status, c.error == std::string("body_too_large") ? 413 : 400)
        << c.name;
  }
}

TEST(Ask, KeepsThePayloadAndThePlanAsCompactJson) {
  const auto parsed = ParseAsk(R"({"tenant":"t","plan":{"intent":"chat"},"payload":{"m": 1}})", true, true, 1024);
  ASSERT_TRUE(std::holds_alternative<Ask>(parsed));
  const auto& ask = std::get<Ask>(parsed);
  EXPECT_EQ(ask.payload_json, R"({"m":1})");
  EXPECT_EQ(ask.plan_json, R"({"intent":"chat"})");
  EXPECT_EQ(std::get<Ask>(ParseAsk(R"({"intent":"chat"})", false, false, 1024)).payload_json, "{}");
}

}  // namespace
}  // namespace cogo::orchestrator
