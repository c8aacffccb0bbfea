#include "cogo/policy/policy_table.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace cogo::policy {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

json MinimalConfig() {
  return json::parse(R"({
    "default": {
      "allowed_models": ["m"], "allowed_versions": ["*"], "max_cost_usd": 1.0,
      "max_tokens": 1000, "default_ttl_ms": 1000, "max_ttl_ms": 5000, "max_attempts": 3
    },
    "prices": {"m": {"usd_per_1k_input": 0.5, "usd_per_1k_output": 1.5}},
    "tenants": {"default_daily_cap_usd": 10}
  })");
}

std::string ReadExampleConfig() {
  // __FILE__ is absolute under CMake; the example lives at <repo>/config/.
  const auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "config" /
                    "policy.example.json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(PolicyTable, MinimalConfigLoadsWithBuiltInBackoff) {
  const PolicyTableResult result = ParsePolicyTable(MinimalConfig().dump());
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  const PolicyRule& rule = result.table().default_rule();
  EXPECT_EQ(rule.name, "default");
  EXPECT_EQ(rule.max_tokens, 1000);
  EXPECT_EQ(rule.max_ttl, milliseconds(5000));
  EXPECT_EQ(rule.backoff.base, BackoffParams{}.base);
  EXPECT_EQ(rule.backoff.cap, BackoffParams{}.cap);
  EXPECT_DOUBLE_EQ(result.table().DailyCapUsd("anyone"), 10.0);
}

TEST(PolicyTable, ExampleConfigLoads) {
  const PolicyTableResult result = ParsePolicyTable(ReadExampleConfig());
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  const PolicyTable& table = result.table();
  EXPECT_EQ(table.prices().size(), 7u);
  EXPECT_DOUBLE_EQ(table.DailyCapUsd("acme"), 500.0);
  EXPECT_DOUBLE_EQ(table.DailyCapUsd("trial-tenant"), 1.0);
  EXPECT_DOUBLE_EQ(table.DailyCapUsd("unlisted"), 25.0);
}

struct LookupCase {
  const char* agent_id;
  std::optional<Target> target;
  const char* expected_rule;
};

TEST(PolicyTable, AgentRuleBeatsRouteRuleBeatsDefault) {
  const PolicyTableResult result = ParsePolicyTable(ReadExampleConfig());
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  const LookupCase cases[] = {
      {"planner", std::nullopt, "agent:planner"},
      {"planner", Target{"code", "build-test"}, "agent:planner"},  // agent beats route
      {"coder", Target{"code", "build-test"}, "route:code/build-test"},
      {"coder", Target{"rag", "embed"}, "route:rag/embed"},
      {"coder", Target{"gateway", "chat"}, "default"},  // route without a rule
      {"coder", std::nullopt, "default"},
      {"Planner", std::nullopt, "default"},                // agent ids match exactly
      {"coder", Target{"code/build", "test"}, "default"},  // "code/build/test" is no route
  };
  for (const auto& c : cases) {
    EXPECT_EQ(result.table().Lookup(c.agent_id, c.target).name, c.expected_rule)
        << c.agent_id << " " << (c.target ? c.target->Route() : "(no target)");
  }
}

TEST(PolicyTable, OmittedRuleKeysComeFromDefaultNotFromRoutes) {
  const PolicyTableResult result = ParsePolicyTable(ReadExampleConfig());
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  const PolicyTable& table = result.table();
  // planner names models, versions and caps; its TTL, attempts and backoff are default's.
  const PolicyRule& planner = table.Lookup("planner", Target{"code", "build-test"});
  EXPECT_EQ(planner.max_tokens, 64000);
  EXPECT_EQ(planner.max_ttl, milliseconds(900000));  // default's, not the route's 1800000
  EXPECT_EQ(planner.max_attempts, 5);
  EXPECT_TRUE(planner.AllowsModel("gpt-4o"));
  EXPECT_FALSE(planner.AllowsModel("gpt-4o-mini"));
  EXPECT_TRUE(planner.AllowsVersion("1.5.0"));
  EXPECT_FALSE(planner.AllowsVersion("1.5"));
  // The route overrides part of backoff; the rest is default's backoff.
  const PolicyRule& build = table.Lookup("coder", Target{"code", "build-test"});
  EXPECT_EQ(build.backoff.base, milliseconds(5000));
  EXPECT_EQ(build.backoff.cap, milliseconds(120000));
  EXPECT_DOUBLE_EQ(build.backoff.multiplier, 2.0);
  EXPECT_DOUBLE_EQ(build.backoff.jitter, 0.2);
  EXPECT_EQ(build.max_tokens, 32000);
  EXPECT_TRUE(build.AllowsModel("anything-at-all"));  // "*"
}

struct ConfigErrorCase {
  const char* name;
  const char* pointer;  // JSON pointer into MinimalConfig(); "/" in keys is written ~1
  json value;           // replacement; discarded = remove the key
  const char* path;     // expected PolicyConfigError::path
  const char* message;  // expected substring of the message
};

const json kRemove = json(json::value_t::discarded);

TEST(PolicyTable, RejectsBadConfigNamingTheKeyPath) {
  const json valid_rule = {{"allowed_models", {"m"}}};
  const ConfigErrorCase cases[] = {
      {"unknown top key", "/agent", json::object(), "agent", "unknown key (allowed: default"},
      {"default missing", "/default", kRemove, "default", "required key is missing"},
      {"tenants missing", "/tenants", kRemove, "tenants", "required key is missing"},
      {"default key missing", "/default/max_tokens", kRemove, "default.max_tokens", "required"},
      {"default unknown key", "/default/max_token", 5, "default.max_token", "unknown key"},
      {"agent unknown key", "/agents/planner/modle", "m", "agents.planner.modle", "unknown key"},
      {"route backoff unknown key", "/routes/x~1y/backoff/base", 5, "routes.x/y.backoff.base",
       "unknown key (allowed: base_ms, cap_ms, multiplier, jitter)"},
      {"price unknown key", "/prices/m/usd_per_1k", 1, "prices.m.usd_per_1k", "unknown key"},
      {"tenants unknown key", "/tenants/daily_cap", 1, "tenants.daily_cap", "unknown key"},
      {"comment not string", "/default/_comment", 1, "default._comment", "expected a string"},
      {"agents not object", "/agents", json::array(), "agents", "expected an object"},
      {"agent rule not object", "/agents/planner", "strict", "agents.planner",
       "expected an object"},
      {"empty agent name", "/agents", {{"", valid_rule}}, "agents.", "must not be empty"},
      {"tokens string", "/default/max_tokens", "5", "default.max_tokens",
       "expected an integer, got \"5\""},
      {"tokens fractional", "/default/max_tokens", 1.5, "default.max_tokens",
       "expected an integer"},
      {"tokens zero", "/default/max_tokens", 0, "default.max_tokens", "must be in [1, "},
      {"cost zero", "/default/max_cost_usd", 0, "default.max_cost_usd", "must be > 0"},
      {"cost string", "/default/max_cost_usd", "1", "default.max_cost_usd", "expected a number"},
      {"models empty", "/default/allowed_models", json::array(), "default.allowed_models",
       "at least one"},
      {"models not array", "/default/allowed_models", "m", "default.allowed_models",
       "expected an array"},
      {"model not string",
       "/default/allowed_models",
       {"m", 3},
       "default.allowed_models[1]",
       "expected a string"},
      {"version empty",
       "/default/allowed_versions",
       {""},
       "default.allowed_versions[0]",
       "must not be empty"},
      {"default ttl over max", "/default/default_ttl_ms", 6000, "default.default_ttl_ms",
       "must be <= max_ttl_ms (5000)"},
      {"agent lowers max under default ttl", "/agents/a/max_ttl_ms", 500, "agents.a.default_ttl_ms",
       "must be <= max_ttl_ms (500)"},
      {"max ttl absurd", "/default/max_ttl_ms", kMaxTtl.count() + 1, "default.max_ttl_ms",
       "must be in [1, 604800000]"},
      {"ttl fractional", "/default/default_ttl_ms", 10.5, "default.default_ttl_ms", "integer"},
      {"attempts zero", "/default/max_attempts", 0, "default.max_attempts", "must be in [1, 1000]"},
      {"multiplier below 1", "/default/backoff/multiplier", 0.5, "default.backoff.multiplier",
       "must be >= 1"},
      {"jitter over 1", "/default/backoff/jitter", 1.5, "default.backoff.jitter", "<= 1"},
      {"base negative", "/default/backoff/base_ms", -1, "default.backoff.base_ms", "must be in"},
      {"backoff cap under base",
       "/default/backoff",
       {{"base_ms", 500}, {"cap_ms", 100}},
       "default.backoff.cap_ms",
       "must be >= base_ms"},
      {"route without slash", "/routes/gateway", valid_rule, "routes.gateway", "<service>/<role>"},
      {"route with two slashes", "/routes/a~1b~1c", valid_rule, "routes.a/b/c", "<service>/<role>"},
      {"route empty service", "/routes/~1chat", valid_rule, "routes./chat", "<service>/<role>"},
      {"route empty role", "/routes/gateway~1", valid_rule, "routes.gateway/", "<service>/<role>"},
      {"model not priced",
       "/default/allowed_models",
       {"m", "unpriced"},
       "default.allowed_models[1]",
       "no entry in prices"},
      {"agent model not priced",
       "/agents/a/allowed_models",
       {"x"},
       "agents.a.allowed_models[0]",
       "no entry in prices"},
      {"price missing output", "/prices/m/usd_per_1k_output", kRemove, "prices.m.usd_per_1k_output",
       "required key is missing"},
      {"price negative", "/prices/m/usd_per_1k_input", -0.1, "prices.m.usd_per_1k_input",
       "must be >= 0"},
      {"price not object", "/prices/m", 0.5, "prices.m", "expected an object"},
      {"tenant default negative", "/tenants/default_daily_cap_usd", -1,
       "tenants.default_daily_cap_usd", "must be >= 0"},
      {"tenant cap string", "/tenants/daily_cap_usd/acme", "lots", "tenants.daily_cap_usd.acme",
       "expected a number"},
  };
  for (const auto& c : cases) {
    json config = MinimalConfig();
    const json::json_pointer pointer(c.pointer);
    if (c.value.is_discarded()) {
      config[pointer.parent_pointer()].erase(pointer.back());
    } else {
      config[pointer] = c.value;
    }
    const PolicyTableResult result = ParsePolicyTable(config.dump());
    ASSERT_FALSE(result.ok()) << c.name;
    EXPECT_EQ(result.error().path, c.path) << c.name << ": " << result.error().ToString();
    EXPECT_NE(result.error().message.find(c.message), std::string::npos)
        << c.name << ": " << result.error().ToString();
  }
}

struct DocumentErrorCase {
  const char* text;
  const char* path;
  const char* message;
};

TEST(PolicyTable, RejectsBadDocuments) {
  const DocumentErrorCase cases[] = {
      {"", "", "invalid JSON"},
      {"{\"default\": ", "", "invalid JSON"},
      {"[]", "", "expected an object"},
      {R"({"default": {"max_tokens": 1, "max_tokens": 2}})", "default.max_tokens", "duplicate key"},
      {R"({"tenants": {}, "tenants": {}})", "tenants", "duplicate key"},
  };
  for (const auto& c : cases) {
    const PolicyTableResult result = ParsePolicyTable(c.text);
    ASSERT_FALSE(result.ok()) << c.text;
    EXPECT_EQ(result.error().path, c.path) << c.text;
    EXPECT_NE(result.error().message.find(c.message), std::string::npos)
        << result.error().ToString();
  }
}

TEST(PolicyTable, ErrorStringNamesThePath) {
  json config = MinimalConfig();
  config["default"]["max_token"] = 5;
  const PolicyTableResult result = ParsePolicyTable(config.dump());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().ToString().rfind("policy config: default.max_token: unknown key", 0), 0u)
      << result.error().ToString();
}

}  // namespace
}  // namespace cogo::policy
