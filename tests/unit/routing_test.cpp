#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>

#include "cogo/orchestrator/brain.h"
#include "cogo/orchestrator/request_view.h"
#include "cogo/orchestrator/routing.h"
#include "cogo/policy/assignment.h"
#include "cogo/workflow/engine.h"

namespace cogo::orchestrator {
namespace {

using nlohmann::json;

json BaseConfig() {
  return json::parse(R"({
    "rules": {
      "chat": {"target": {"service": "gateway", "role": "chat"}, "agent_id": "chat-assistant",
               "model": "offline-deterministic", "version": "1.0.0",
               "budget": {"maxCostUsd": 0.05, "maxTokens": 4000}, "ttl_ms": 60000,
               "description": "talk"}
    },
    "classifier": {"enabled": false, "model": "gpt-4o-mini"}
  })");
}

RoutingTable Load(const json& config) {
  auto parsed = ParseRoutingTable(config.dump());
  if (auto* e = std::get_if<RoutingConfigError>(&parsed)) ADD_FAILURE() << e->ToString();
  return std::get<RoutingTable>(std::move(parsed));
}

TEST(Routing, LoaderRejectsBadConfigNamingThePath) {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    const char* path;
  };
  const std::vector<Case> cases = {
      {"unknown top key", [](json& c) { c["extra"] = 1; }, "extra"},
      {"unknown rule key", [](json& c) { c["rules"]["chat"]["colour"] = "red"; }, "rules.chat.colour"},
      {"unknown budget key", [](json& c) { c["rules"]["chat"]["budget"]["usd"] = 1; }, "rules.chat.budget.usd"},
      {"missing model", [](json& c) { c["rules"]["chat"].erase("model"); }, "rules.chat.model"},
      {"string ttl", [](json& c) { c["rules"]["chat"]["ttl_ms"] = "60000"; }, "rules.chat.ttl_ms"},
      {"zero tokens", [](json& c) { c["rules"]["chat"]["budget"]["maxTokens"] = 0; }, "rules.chat.budget.maxTokens"},
      {"negative cost", [](json& c) { c["rules"]["chat"]["budget"]["maxCostUsd"] = -1; }, "rules.chat.budget.maxCostUsd"},
      {"empty target role", [](json& c) { c["rules"]["chat"]["target"]["role"] = ""; }, "rules.chat.target.role"},
      {"bad intent name", [](json& c) { c["rules"]["Bad Intent"] = c["rules"]["chat"]; }, "rules.Bad Intent"},
      {"no rules", [](json& c) { c["rules"] = json::object(); }, "rules"},
      {"classifier without model", [](json& c) { c["classifier"] = {{"enabled", true}}; }, "classifier.model"},
      {"classifier unknown key", [](json& c) { c["classifier"]["temperature"] = 0; }, "classifier.temperature"},
      {"workflow rule with a target", [](json& c) { c["rules"]["index"] = {{"workflow", "indexing"}, {"target", c["rules"]["chat"]["target"]}}; }, "rules.index.target"},
      {"workflow id not a name", [](json& c) { c["rules"]["index"] = {{"workflow", "../etc"}}; }, "rules.index.workflow"},
      {"workflow id not a string", [](json& c) { c["rules"]["index"] = {{"workflow", 7}}; }, "rules.index.workflow"},
  };
  for (const auto& c : cases) {
    json config = BaseConfig();
    c.edit(config);
    auto parsed = ParseRoutingTable(config.dump());
    ASSERT_TRUE(std::holds_alternative<RoutingConfigError>(parsed)) << c.name;
    EXPECT_EQ(std::get<RoutingConfigError>(parsed).path, c.path) << c.name;
  }
  EXPECT_TRUE(std::holds_alternative<RoutingConfigError>(ParseRoutingTable("{not json")));
}

TEST(Routing, CommentsAreAllowedAnywhere) {
  json config = BaseConfig();
  config["_comment"] = "top";
  config["rules"]["_comment"] = "rules";
  config["rules"]["chat"]["_comment"] = "a rule";
  const auto table = Load(config);
  EXPECT_EQ(table.rules().size(), 1u);
}

TEST(Routing, ShippedExampleLoads) {
  std::ifstream in(std::string(COGO_SOURCE_DIR) + "/config/routing.example.json");
  ASSERT_TRUE(in);
  const std::string text{std::istreambuf_iterator<char>(in), {}};
  auto parsed = ParseRoutingTable(text);
  ASSERT_TRUE(std::holds_alternative<RoutingTable>(parsed))
      << std::get<RoutingConfigError>(parsed).ToString();
  EXPECT_NE(std::get<RoutingTable>(parsed).Find("chat"), nullptr);
}

TEST(Routing, DecideTableOfCases) {
  auto with_classifier = BaseConfig();
  with_classifier["classifier"]["enabled"] = true;
  const auto plain = Load(BaseConfig());
  const auto classifying = Load(with_classifier);
  struct Case {
    const char* name;
    const RoutingTable* table;
    const char* intent;
    std::optional<std::string> classified;
    const char* matched_by;  // nullptr: unknown_intent
  };
  const std::vector<Case> cases = {
      {"rule", &plain, "chat", std::nullopt, "rule"},
      {"rule wins over classifier", &classifying, "chat", std::string("chat"), "rule"},
      {"unknown, no classifier", &plain, "weather", std::nullopt, nullptr},
      {"unknown, classified", &classifying, "smalltalk", std::string("chat"), "classifier"},
      {"unknown, classifier said none", &classifying, "weather", std::nullopt, nullptr},
      {"classifier named an unknown intent", &classifying, "weather", std::string("weather"), nullptr},
  };
  for (const auto& c : cases) {
    const auto r = Decide(c.intent, *c.table, c.classified);
    if (c.matched_by == nullptr) {
      ASSERT_TRUE(std::holds_alternative<DecideFailure>(r)) << c.name;
      EXPECT_EQ(std::get<DecideFailure>(r).reason, "unknown_intent") << c.name;
    } else {
      ASSERT_TRUE(std::holds_alternative<Plan>(r)) << c.name;
      const auto& plan = std::get<Plan>(r);
      EXPECT_EQ(plan.matched_by, c.matched_by) << c.name;
      EXPECT_EQ(plan.intent, c.intent) << c.name;
      EXPECT_EQ(plan.rule.target.Route(), "gateway/chat") << c.name;
      EXPECT_FALSE(plan.rationale.empty()) << c.name;
    }
  }
  EXPECT_FALSE(NeedsClassification("chat", classifying));
  EXPECT_TRUE(NeedsClassification("weather", classifying));
  EXPECT_FALSE(NeedsClassification("weather", plain));
}

// A rule may start a workflow instead of calling an agent: it decides like any rule, is not
// judged by the agent policy, and survives the plan round trip.
TEST(Routing, AWorkflowRuleDecidesAndRoundTrips) {
  json config = BaseConfig();
  config["rules"]["index"] = {{"workflow", "indexing"}, {"description", "index a document"}};
  const auto table = Load(config);
  const auto decided = Decide("index", table, std::nullopt);
  ASSERT_TRUE(std::holds_alternative<Plan>(decided));
  const auto& plan = std::get<Plan>(decided);
  EXPECT_EQ(plan.rule.workflow, "indexing");
  EXPECT_EQ(plan.rationale, "intent 'index' matches a routing rule -> workflow indexing");
  EXPECT_EQ(Destination(plan.rule), "workflow indexing");
  const auto again = ParsePlanJson(PlanJson(plan));
  ASSERT_TRUE(std::holds_alternative<Plan>(again));
  EXPECT_EQ(std::get<Plan>(again).rule.workflow, "indexing");
  EXPECT_EQ(json::parse(table.ToJson())["rules"]["index"], config["rules"]["index"]);
  const auto [system, user] = ClassificationPrompt("please index", "{}", table);
  EXPECT_NE(system.find("- index: index a document"), std::string::npos);
}

TEST(Routing, ClassificationReplies) {
  const auto table = Load(BaseConfig());
  EXPECT_EQ(ParseClassification("chat", table), "chat");
  EXPECT_EQ(ParseClassification("  Chat.\n", table), "chat");
  EXPECT_EQ(ParseClassification("\"chat\" is best", table), "chat");
  EXPECT_EQ(ParseClassification("none", table), std::nullopt);
  EXPECT_EQ(ParseClassification("", table), std::nullopt);
  EXPECT_EQ(ParseClassification("[offline-deterministic] reply to: x", table), std::nullopt);
  const auto [system, user] = ClassificationPrompt("smalltalk", R"({"m":1})", table);
  EXPECT_NE(system.find("- chat: talk"), std::string::npos);
  EXPECT_NE(user.find("smalltalk"), std::string::npos);
}

TEST(Routing, ExecutePayloadCarriesAValidAssignment) {
  const auto table = Load(BaseConfig());
  const auto plan = std::get<Plan>(Decide("chat", table, std::nullopt));
  const auto issued = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
  const auto payload = json::parse(ExecutePayloadJson(plan, issued, R"({"message":"hi"})"));
  EXPECT_EQ(payload["intent"], "chat");
  EXPECT_EQ(payload["input"]["message"], "hi");
  const auto a = policy::ParseAssignment(payload.dump());
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(a.envelope().agent_id, "chat-assistant");
  EXPECT_EQ(a.envelope().model, "offline-deterministic");
  EXPECT_EQ(a.envelope().ttl.count(), 60000);
  EXPECT_EQ(a.envelope().budget.max_tokens, 4000);
  EXPECT_EQ(a.envelope().target->Route(), "gateway/chat");
  EXPECT_EQ(*a.envelope().issued_at, issued);
}

TEST(Routing, ExecuteMessageGoesToTheExecutorWithThatPayload) {
  const auto table = Load(BaseConfig());
  const auto plan = std::get<Plan>(Decide("chat", table, std::nullopt));
  const auto issued = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
  const auto m = ExecuteMessage(plan, issued, R"({"message":"hi"})", "acme", 3, 2);
  EXPECT_EQ(m.service, "orchestrator");
  EXPECT_EQ(m.role, "execute");
  EXPECT_EQ(m.tenant, "acme");
  EXPECT_EQ(m.shard, 3);
  EXPECT_EQ(m.max_attempts, 2);
  EXPECT_EQ(m.payload_json, ExecutePayloadJson(plan, issued, R"({"message":"hi"})"));
  EXPECT_TRUE(m.idempotency_key.empty() && m.correlation_id.empty() && m.parent_id == 0);
}

TEST(Routing, PlanJsonRoundTrips) {
  const auto table = Load(BaseConfig());
  const auto plan = std::get<Plan>(Decide("chat", table, std::nullopt));
  auto back = ParsePlanJson(PlanJson(plan));
  ASSERT_TRUE(std::holds_alternative<Plan>(back)) << std::get<RoutingConfigError>(back).ToString();
  EXPECT_EQ(std::get<Plan>(back).rule.agent_id, plan.rule.agent_id);
  EXPECT_EQ(std::get<Plan>(back).rule.ttl, plan.rule.ttl);
  auto bad = json::parse(PlanJson(plan));
  bad["surprise"] = true;
  EXPECT_TRUE(std::holds_alternative<RoutingConfigError>(ParsePlanJson(bad.dump())));
}

TEST(RequestView, SummarizeTableOfCases) {
  auto node = [](int64_t id, int64_t parent, const char* status, bool children) {
    return NodeState{id, parent, "r/" + std::to_string(id), status, status == std::string("failed") ? "boom" : "", children};
  };
  struct Case {
    const char* name;
    std::vector<NodeState> nodes;
    const char* status;
    int64_t result_from;
  };
  const std::vector<Case> cases = {
      {"just enqueued", {node(1, 0, "queued", false)}, "queued", 0},
      {"deciding", {node(1, 0, "running", false)}, "running", 0},
      {"handed to execute", {node(1, 0, "done", true), node(2, 1, "queued", false)}, "running", 0},
      {"target running", {node(1, 0, "done", true), node(2, 1, "done", true), node(3, 2, "running", false)}, "running", 0},
      {"all done", {node(1, 0, "done", true), node(2, 1, "done", true), node(3, 2, "done", false)}, "done", 3},
      {"target failed", {node(1, 0, "done", true), node(2, 1, "done", true), node(3, 2, "failed", false)}, "failed", 0},
      {"decide failed", {node(1, 0, "failed", false)}, "failed", 0},
      {"retry pending after a failure", {node(1, 0, "done", true), node(2, 1, "failed", true), node(3, 2, "queued", false)}, "running", 0},
  };
  for (const auto& c : cases) {
    const auto s = Summarize(c.nodes);
    EXPECT_EQ(s.status, c.status) << c.name;
    EXPECT_EQ(s.result_from, c.result_from) << c.name;
    if (s.status == std::string("failed")) {
      EXPECT_FALSE(s.error.empty()) << c.name;
    }
  }
}

// A rule may start a workflow a tenant may start, never one only operators may (any tenant's
// request would start it), nor one the catalog lacks.
TEST(Routing, WorkflowRulesNameWorkflowsATenantMayStart) {
  const workflow::DefinitionCatalog catalog(workflow::LoadDefinitions(std::string(COGO_SOURCE_DIR) + "/config/workflows"));
  const auto problems = [&](const char* workflow_id) {
    json config = BaseConfig();
    config["rules"]["flow"] = {{"workflow", workflow_id}, {"description", "a workflow"}};
    return CheckWorkflowRules(Load(config), &catalog);
  };
  EXPECT_TRUE(problems("indexing").empty());
  ASSERT_EQ(problems("upgrade").size(), 1u);
  EXPECT_EQ(problems("upgrade")[0], "rule flow: the workflow upgrade is for service_role tokens only");
  ASSERT_EQ(problems("nothing").size(), 1u);
  EXPECT_EQ(problems("nothing")[0], "rule flow: no workflow definition named nothing");
}

}  // namespace
}  // namespace cogo::orchestrator
