#include "cogo/policy/assignment.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace cogo::policy {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Code = AssignmentErrorCode;

json ValidEnvelope() {
  return json::parse(R"({
    "agent_id": "planner", "version": "1.4.0", "model": "gpt-4o-mini",
    "budget": {"maxCostUsd": 0.25, "maxTokens": 4000},
    "ttl_ms": 60000, "issued_at": 1700000000000,
    "target": {"service": "gateway", "role": "chat"}
  })");
}

TEST(Assignment, ParsesEveryField) {
  const json payload = {{"prompt", "hi"}, {"__assignment", ValidEnvelope()}};
  const AssignmentResult result = ParseAssignment(payload.dump());
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  const AssignmentEnvelope& e = result.envelope();
  EXPECT_EQ(e.agent_id, "planner");
  EXPECT_EQ(e.version, "1.4.0");
  EXPECT_EQ(e.model, "gpt-4o-mini");
  EXPECT_DOUBLE_EQ(e.budget.max_cost_usd, 0.25);
  EXPECT_EQ(e.budget.max_tokens, 4000);
  EXPECT_EQ(e.ttl, milliseconds(60000));
  ASSERT_TRUE(e.issued_at.has_value());
  EXPECT_EQ(e.issued_at->time_since_epoch(), milliseconds(1700000000000));
  ASSERT_TRUE(e.target.has_value());
  EXPECT_EQ(e.target->Route(), "gateway/chat");
}

TEST(Assignment, OptionalFieldsMayBeAbsentOrNull) {
  json envelope = ValidEnvelope();
  envelope.erase("issued_at");
  envelope["target"] = nullptr;
  envelope["future_field"] = {1, 2, 3};  // unknown keys are ignored for forward compatibility
  envelope["budget"]["maxCostUsd"] = 2;  // an integer is a fine USD amount
  const AssignmentResult result = ParseAssignmentEnvelope(envelope.dump());
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_FALSE(result.envelope().issued_at.has_value());
  EXPECT_FALSE(result.envelope().target.has_value());
  EXPECT_DOUBLE_EQ(result.envelope().budget.max_cost_usd, 2.0);
}

struct EnvelopeErrorCase {
  const char* name;
  const char* pointer;  // JSON pointer to change in a valid envelope
  json value;           // replacement; a discarded value means "remove the field"
  const char* field;
  Code code;
};

const json kRemove = json(json::value_t::discarded);

TEST(Assignment, ReportsEachMalformedFieldPrecisely) {
  const EnvelopeErrorCase cases[] = {
      {"agent_id absent", "/agent_id", kRemove, "agent_id", Code::missing},
      {"agent_id number", "/agent_id", 7, "agent_id", Code::wrong_type},
      {"agent_id empty", "/agent_id", "", "agent_id", Code::empty},
      {"version absent", "/version", kRemove, "version", Code::missing},
      {"version null", "/version", nullptr, "version", Code::wrong_type},
      {"version empty", "/version", "", "version", Code::empty},
      {"model absent", "/model", kRemove, "model", Code::missing},
      {"model array", "/model", json::array({"a"}), "model", Code::wrong_type},
      {"model empty", "/model", "", "model", Code::empty},
      {"budget absent", "/budget", kRemove, "budget", Code::missing},
      {"budget string", "/budget", "1 USD", "budget", Code::wrong_type},
      {"cost absent", "/budget/maxCostUsd", kRemove, "budget.maxCostUsd", Code::missing},
      {"cost string", "/budget/maxCostUsd", "0.25", "budget.maxCostUsd", Code::wrong_type},
      {"cost bool", "/budget/maxCostUsd", true, "budget.maxCostUsd", Code::wrong_type},
      {"cost zero", "/budget/maxCostUsd", 0, "budget.maxCostUsd", Code::out_of_range},
      {"cost negative", "/budget/maxCostUsd", -0.01, "budget.maxCostUsd", Code::out_of_range},
      {"tokens absent", "/budget/maxTokens", kRemove, "budget.maxTokens", Code::missing},
      {"tokens fractional", "/budget/maxTokens", 10.5, "budget.maxTokens", Code::wrong_type},
      {"tokens float 1.0", "/budget/maxTokens", 1.0, "budget.maxTokens", Code::wrong_type},
      {"tokens string", "/budget/maxTokens", "4000", "budget.maxTokens", Code::wrong_type},
      {"tokens zero", "/budget/maxTokens", 0, "budget.maxTokens", Code::out_of_range},
      {"tokens negative", "/budget/maxTokens", -5, "budget.maxTokens", Code::out_of_range},
      {"tokens over int64", "/budget/maxTokens", uint64_t{1} << 63, "budget.maxTokens",
       Code::out_of_range},
      {"ttl absent", "/ttl_ms", kRemove, "ttl_ms", Code::missing},
      {"ttl fractional", "/ttl_ms", 100.5, "ttl_ms", Code::wrong_type},
      {"ttl zero", "/ttl_ms", 0, "ttl_ms", Code::out_of_range},
      {"ttl negative", "/ttl_ms", -1, "ttl_ms", Code::out_of_range},
      {"ttl absurd", "/ttl_ms", kMaxTtl.count() + 1, "ttl_ms", Code::out_of_range},
      {"issued_at string", "/issued_at", "2024-01-01", "issued_at", Code::wrong_type},
      {"issued_at negative", "/issued_at", -1, "issued_at", Code::out_of_range},
      {"issued_at past 9999", "/issued_at", kMaxIssuedAtMs + 1, "issued_at", Code::out_of_range},
      {"target string", "/target", "gateway/chat", "target", Code::wrong_type},
      {"target service absent", "/target/service", kRemove, "target.service", Code::missing},
      {"target role empty", "/target/role", "", "target.role", Code::empty},
      {"target role number", "/target/role", 3, "target.role", Code::wrong_type},
      {"target service with a slash", "/target/service", "gate/way", "target.service", Code::invalid_name},
      {"target role with a slash", "/target/role", "chat/", "target.role", Code::invalid_name},
  };
  for (const auto& c : cases) {
    json envelope = ValidEnvelope();
    const json::json_pointer pointer(c.pointer);
    if (c.value.is_discarded()) {
      envelope[pointer.parent_pointer()].erase(pointer.back());
    } else {
      envelope[pointer] = c.value;
    }
    for (const bool whole_payload : {false, true}) {
      const AssignmentResult result = whole_payload
                                          ? ParseAssignment(json{{"__assignment", envelope}}.dump())
                                          : ParseAssignmentEnvelope(envelope.dump());
      ASSERT_FALSE(result.ok()) << c.name;
      EXPECT_EQ(result.error().field, c.field) << c.name;
      EXPECT_EQ(result.error().code, c.code)
          << c.name << ": got " << ErrorCodeName(result.error().code);
      EXPECT_FALSE(result.error().message.empty()) << c.name;
    }
  }
}

struct DocumentErrorCase {
  const char* text;
  bool whole_payload;
  const char* field;
  Code code;
};

TEST(Assignment, ReportsDocumentLevelErrors) {
  const DocumentErrorCase cases[] = {
      {"", true, "payload", Code::invalid_json},
      {"{\"__assignment\": ", true, "payload", Code::invalid_json},
      {"[1, 2]", true, "payload", Code::wrong_type},
      {"{\"prompt\": \"hi\"}", true, "__assignment", Code::missing_assignment},
      {"{\"__assignment\": \"x\"}", true, "__assignment", Code::wrong_type},
      {"{\"__assignment\": null}", true, "__assignment", Code::wrong_type},
      {"not json", false, "__assignment", Code::invalid_json},
      {"42", false, "__assignment", Code::wrong_type},
  };
  for (const auto& c : cases) {
    const AssignmentResult result =
        c.whole_payload ? ParseAssignment(c.text) : ParseAssignmentEnvelope(c.text);
    ASSERT_FALSE(result.ok()) << c.text;
    EXPECT_EQ(result.error().field, c.field) << c.text;
    EXPECT_EQ(result.error().code, c.code) << c.text;
  }
}

TEST(Assignment, FirstErrorInWireOrderWins) {
  json envelope = ValidEnvelope();
  envelope.erase("model");
  envelope["ttl_ms"] = -1;
  const AssignmentResult result = ParseAssignmentEnvelope(envelope.dump());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().ToString(), "model: missing: required key is missing");
}

TEST(Assignment, ErrorCodeNamesAreStable) {
  EXPECT_EQ(ErrorCodeName(Code::invalid_json), "invalid_json");
  EXPECT_EQ(ErrorCodeName(Code::missing_assignment), "missing_assignment");
  EXPECT_EQ(ErrorCodeName(Code::missing), "missing");
  EXPECT_EQ(ErrorCodeName(Code::wrong_type), "wrong_type");
  EXPECT_EQ(ErrorCodeName(Code::empty), "empty");
  EXPECT_EQ(ErrorCodeName(Code::out_of_range), "out_of_range");
}

TEST(Assignment, ToJsonRoundTripsWithWireNames) {
  const AssignmentResult parsed = ParseAssignmentEnvelope(ValidEnvelope().dump());
  ASSERT_TRUE(parsed.ok());
  const std::string text = ToJson(parsed.envelope());
  EXPECT_EQ(json::parse(text), ValidEnvelope());  // same keys, same values, nothing extra

  AssignmentEnvelope minimal{"a", "v", "m", {1.5, 10}, milliseconds(5), std::nullopt, std::nullopt};
  const json minimal_json = json::parse(ToJson(minimal));
  EXPECT_FALSE(minimal_json.contains("issued_at"));
  EXPECT_FALSE(minimal_json.contains("target"));
  const AssignmentResult again = ParseAssignmentEnvelope(ToJson(minimal));
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(again.envelope().budget.max_tokens, 10);
  EXPECT_DOUBLE_EQ(again.envelope().budget.max_cost_usd, 1.5);
  EXPECT_EQ(again.envelope().ttl, milliseconds(5));
}

}  // namespace
}  // namespace cogo::policy
