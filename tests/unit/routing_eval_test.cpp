#include "cogo/orchestrator/routing_eval.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cogo/config/files.h"
#include "cogo/config/json_reader.h"

namespace {

using cogo::orchestrator::EvalItem;
using cogo::orchestrator::EvalOutcome;
using cogo::orchestrator::ParseEvalSet;
using cogo::orchestrator::ScoreRouting;

TEST(RoutingEval, TheShippedSetParses) {
  const auto items = ParseEvalSet(cogo::config::ReadFile(std::string(COGO_SOURCE_DIR) + "/config/eval/routing.json"));
  ASSERT_GE(items.size(), 4u);
  EXPECT_EQ(items[0].intent, "chat");
  EXPECT_EQ(items[0].expected_agent, "chat-assistant");
  EXPECT_EQ(nlohmann::json::parse(items[0].payload_json)["message"], "hello there");
  EXPECT_EQ(items[0].expected_answer, "hello there");
  EXPECT_EQ(items[2].expected_answer, "");  // none expected: any result
}

TEST(RoutingEval, ASetIsReadStrictly) {
  struct Case {
    const char* text;
    const char* path;
  };
  const std::vector<Case> cases = {
      {R"({"items": []})", "items"},
      {R"({"items": [{"intent": "chat"}]})", "items[0].expected"},
      {R"({"items": [{"intent": "chat", "expected": {"intent": "Chat"}}]})", "items[0].expected.intent"},
      {R"({"items": [{"intent": "free text", "expected": {"intent": "chat"}}]})", "items[0].intent"},
      {R"({"items": [{"intent": "chat", "expected": {"intent": "chat", "agent": "x"}}]})", "items[0].expected.agent"},
      {R"({"items": [{"intent": "chat", "expected": {"intent": "chat"}}], "extra": 1})", "extra"},
      {R"({"items": [{"intent": "chat", "expected": {"intent": "chat", "answer_contains": ""}}]})",
       "items[0].expected.answer_contains"},
  };
  for (const auto& c : cases) {
    try {
      (void)ParseEvalSet(c.text);
      ADD_FAILURE() << c.text << " was accepted";
    } catch (const cogo::config::JsonError& e) {
      EXPECT_EQ(e.path(), c.path) << c.text;
    }
  }
}

TEST(RoutingEval, AccuracyAndConfusion) {
  const std::vector<EvalItem> items = {
      {"chat", "{}", "chat", "chat-assistant", ""},
      {"chat", "{}", "chat", "chat-assistant", ""},
      {"gist", "{}", "summarize", "", ""},
      {"summarize", "{}", "summarize", "summarizer", ""},
      {"talk", "{}", "chat", "", ""},
  };
  const std::vector<EvalOutcome> outcomes = {
      {"chat", "chat-assistant", ""},
      {"chat", "someone-else", ""},     // the right rule, the wrong agent
      {"summarize", "summarizer", ""},  // classified right; no agent expected
      {"chat", "chat-assistant", ""},   // the wrong rule
      {"", "", "unknown_intent"},       // refused
  };
  const auto score = ScoreRouting(items, outcomes);
  EXPECT_EQ(score.items, 5);
  EXPECT_EQ(score.correct, 2);
  EXPECT_DOUBLE_EQ(score.accuracy, 0.4);
  EXPECT_EQ(score.wrong, (std::vector<size_t>{1, 3, 4}));
  EXPECT_EQ(score.confusion.at("chat").at("chat"), 2);
  EXPECT_EQ(score.confusion.at("chat").at("(none)"), 1);
  EXPECT_EQ(score.confusion.at("summarize").at("chat"), 1);
  EXPECT_EQ(score.confusion.at("summarize").at("summarize"), 1);
  EXPECT_DOUBLE_EQ(ScoreRouting({}, {}).accuracy, 0.0);
  EXPECT_THROW((void)ScoreRouting(items, {}), std::invalid_argument);
}

}  // namespace
