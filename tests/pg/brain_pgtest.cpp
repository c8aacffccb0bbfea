// cogo-orchestrator-brain over real HTTP and PostgreSQL: plan is side-effect free, execute is
// idempotent with the same Idempotency-Key, state and message views, JSON errors; every call
// needs a JWT (service_role for plan, execute and state; tenant tokens read their tenant only).
#include <nlohmann/json.hpp>
#include <signal.h>

#include "cogo/auth/jwt.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Authorization headers for a token of `role` (and `tenant`), plus `extra` headers.
std::map<std::string, std::string> As(auth::Role role, const std::string& tenant = "",
                                      std::map<std::string, std::string> extra = {}) {
  extra["Authorization"] = "Bearer " + auth::MintDevToken(kTestJwtSecret, auth::ToString(role), tenant);
  return extra;
}
std::map<std::string, std::string> Service(std::map<std::string, std::string> extra = {}) {
  return As(auth::Role::kServiceRole, "", std::move(extra));
}

class BrainTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ExportEdgeSecrets();
  }
  std::unique_ptr<Daemon> StartBrain() {
    return std::make_unique<Daemon>(
        "cogo-orchestrator-brain",
        std::vector<std::string>{"--routing", SourcePath("config/routing.example.json"), "--policy",
                                 SourcePath("config/policy.example.json"), "--workflows",
                                 SourcePath("config/workflows"), "--poll-ms", "100"},
        ScratchFile("brain.log"));
  }
};

int64_t Rows(const char* table) { return Scalar<int64_t>(std::string("SELECT count(*) FROM ") + table); }

TEST_F(BrainTest, PlanIsSideEffectFree) {
  const auto brain = StartBrain();
  const auto r = HttpPost(brain->port(), "/api/orchestrator/plan",
                          R"({"tenant":"acme","intent":"chat","payload":{"message":"hi"}})", Service());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = json::parse(r.body);
  EXPECT_EQ(body["plan"]["target"]["service"], "gateway");
  EXPECT_EQ(body["plan"]["matched_by"], "rule");
  EXPECT_EQ(body["assignment"]["agent_id"], "chat-assistant");
  EXPECT_EQ(body["assignment"]["budget"]["maxTokens"], 4000);
  const auto unknown = HttpPost(brain->port(), "/api/orchestrator/plan", R"({"intent":"launch-rockets"})", Service());
  EXPECT_EQ(unknown.status, 422);
  EXPECT_EQ(json::parse(unknown.body)["error"], "unknown_intent");
  const auto bad = HttpPost(brain->port(), "/api/orchestrator/plan", R"({"intent":)", Service());
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["error"], "malformed_json");
  EXPECT_EQ(Rows("agent_messages"), 0);
  EXPECT_EQ(Rows("bus_events"), 0);
  EXPECT_EQ(Rows("decisions"), 0);
}

TEST_F(BrainTest, ExecuteIsIdempotentWithTheSameKey) {
  const auto brain = StartBrain();
  const std::string body = R"({"tenant":"acme","intent":"chat","payload":{"message":"hi"}})";
  const auto first = HttpPost(brain->port(), "/api/orchestrator/execute", body, Service({{"Idempotency-Key", "k-1"}}));
  const auto again = HttpPost(brain->port(), "/api/orchestrator/execute", body, Service({{"Idempotency-Key", "k-1"}}));
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
  EXPECT_EQ(HttpPost(brain->port(), "/api/orchestrator/execute", body, Service()).status, 202);
  EXPECT_EQ(HttpPost(brain->port(), "/api/orchestrator/execute", body, Service({{"Idempotency-Key", "k-2"}})).status, 202);
  EXPECT_EQ(Rows("agent_messages"), 3);
}

TEST_F(BrainTest, ExecuteTakesAPlanAndChecksItAgainstThePolicy) {
  const auto brain = StartBrain();
  auto plan = json::parse(HttpPost(brain->port(), "/api/orchestrator/plan", R"({"intent":"chat"})", Service()).body)["plan"];
  const auto ok = HttpPost(brain->port(), "/api/orchestrator/execute",
                           json{{"tenant", "acme"}, {"plan", plan}, {"payload", {{"message", "x"}}}}.dump(), Service());
  EXPECT_EQ(ok.status, 202) << ok.body;
  plan["model"] = "gpt-4o";  // the default policy rule does not allow it
  const auto refused = HttpPost(brain->port(), "/api/orchestrator/execute",
                                json{{"tenant", "acme"}, {"plan", plan}}.dump(), Service());
  EXPECT_EQ(refused.status, 422) << refused.body;
  EXPECT_EQ(json::parse(refused.body)["error"], "policy_model_not_allowed");
  const auto missing = HttpPost(brain->port(), "/api/orchestrator/execute", R"({"intent":"chat"})", Service());
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
  // Issued at the database's time of the decide claim, not by the brain's wall clock.
  const auto claimed_ms = Scalar<int64_t>(
      "SELECT floor(extract(epoch FROM (detail->>'claimed_at')::timestamptz) * 1000)::bigint FROM bus_events "
      "WHERE event = 'completed' AND message_id = " + std::to_string(id));
  EXPECT_NEAR(child["payload"]["__assignment"]["issued_at"].get<double>(), static_cast<double>(claimed_ms), 1.0);
  EXPECT_EQ(ScalarText("SELECT rationale FROM decisions WHERE message_id = " + std::to_string(id)).empty(), false);

  const auto state = HttpGet(brain->port(), "/api/orchestrator/state", Service());
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

  const auto view = HttpGet(brain->port(), "/api/messages/" + std::to_string(id), Service());
  ASSERT_EQ(view.status, 200);
  const auto v = json::parse(view.body);
  EXPECT_EQ(v["message"]["id"], id);
  EXPECT_EQ(v["status"], "running");  // the execute child is still queued
  EXPECT_EQ(v["messages"].size(), 2u);
  EXPECT_EQ(HttpGet(brain->port(), "/api/messages/424242", Service()).status, 404);
}

TEST_F(BrainTest, EveryCallNeedsATokenAndPlanExecuteStateNeedServiceRole) {
  const auto brain = StartBrain();
  const std::string execute = R"({"tenant":"acme","intent":"chat"})";
  const auto expired = auth::MintToken(kTestJwtSecret, {auth::Role::kServiceRole, "", "ops", std::nullopt},
                                       std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::system_clock::now().time_since_epoch()).count() - 7200,
                                       std::chrono::hours(1));
  const auto forged = auth::MintToken("another-secret-0123456789abcdef", {auth::Role::kServiceRole, "", "ops", std::nullopt},
                                      std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch()).count(),
                                      std::chrono::hours(1));
  struct Case {
    const char* name;
    const char* method;
    const char* path;
    std::map<std::string, std::string> headers;
    int status;
    const char* error;
  };
  const std::vector<Case> cases = {
      {"plan without a token", "POST", "/api/orchestrator/plan", {}, 401, "missing_token"},
      {"execute without a token", "POST", "/api/orchestrator/execute", {}, 401, "missing_token"},
      {"state without a token", "GET", "/api/orchestrator/state", {}, 401, "missing_token"},
      {"message without a token", "GET", "/api/messages/1", {}, 401, "missing_token"},
      {"execute, not a bearer", "POST", "/api/orchestrator/execute", {{"Authorization", "Basic dXNlcjpwdw=="}}, 401, "malformed_token"},
      {"execute, forged token", "POST", "/api/orchestrator/execute", {{"Authorization", "Bearer " + forged}}, 401, "bad_signature"},
      {"execute, expired token", "POST", "/api/orchestrator/execute", {{"Authorization", "Bearer " + expired}}, 401, "token_expired"},
      {"execute as a tenant", "POST", "/api/orchestrator/execute", As(auth::Role::kAuthenticated, "acme"), 403, "service_role_required"},
      {"execute as anon", "POST", "/api/orchestrator/execute", As(auth::Role::kAnon, "acme"), 403, "service_role_required"},
      {"plan as a tenant", "POST", "/api/orchestrator/plan", As(auth::Role::kAuthenticated, "acme"), 403, "service_role_required"},
      {"state as a tenant", "GET", "/api/orchestrator/state", As(auth::Role::kAuthenticated, "acme"), 403, "service_role_required"},
  };
  for (const auto& c : cases) {
    const auto r = std::string(c.method) == "GET" ? HttpGet(brain->port(), c.path, c.headers)
                                                  : HttpPost(brain->port(), c.path, execute, c.headers);
    ExpectJsonError(r, c.status, c.error, c.name);
    if (c.status == 401) {
      EXPECT_EQ(r.headers.count("WWW-Authenticate"), 1u) << c.name;
    }
  }
  EXPECT_EQ(Rows("agent_messages"), 0);
  EXPECT_EQ(Rows("decisions"), 0);
  EXPECT_EQ(HttpPost(brain->port(), "/api/orchestrator/execute", execute, Service()).status, 202);
}

TEST_F(BrainTest, TenantTokensReadOnlyTheirTenantsMessages) {
  const auto brain = StartBrain();
  const auto acme = HttpPost(brain->port(), "/api/orchestrator/execute", R"({"tenant":"acme","intent":"chat"})", Service());
  const auto globex = HttpPost(brain->port(), "/api/orchestrator/execute", R"({"tenant":"globex","intent":"chat"})", Service());
  ASSERT_EQ(acme.status, 202) << acme.body;
  ASSERT_EQ(globex.status, 202) << globex.body;
  const auto acme_id = std::to_string(json::parse(acme.body)["ids"][0].get<int64_t>());
  const auto globex_id = std::to_string(json::parse(globex.body)["ids"][0].get<int64_t>());
  const auto as_acme = As(auth::Role::kAuthenticated, "acme");

  const auto mine = HttpGet(brain->port(), "/api/messages/" + acme_id, as_acme);
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(json::parse(mine.body)["message"]["tenant"], "acme");
  // Another tenant's message answers exactly like one that does not exist.
  const auto theirs = HttpGet(brain->port(), "/api/messages/" + globex_id, as_acme);
  const auto absent = HttpGet(brain->port(), "/api/messages/999999", as_acme);
  ExpectJsonError(theirs, 404, "not_found", "another tenant's message");
  EXPECT_EQ(theirs.body, absent.body);
  EXPECT_EQ(HttpGet(brain->port(), "/api/messages/" + globex_id, As(auth::Role::kAuthenticated, "globex")).status, 200);
  EXPECT_EQ(HttpGet(brain->port(), "/api/messages/" + globex_id, Service()).status, 200);
}

// The first SIGTERM turns /readyz to 503 `draining` while the listener stays open for
// --http-drain-delay-ms, so a load balancer stops sending before the port closes.
TEST_F(BrainTest, ReadyzIs503WhileDrainingAfterSigterm) {
  const auto log = ScratchFile("brain.log");
  auto brain = std::make_unique<Daemon>(
      "cogo-orchestrator-brain",
      std::vector<std::string>{"--routing", SourcePath("config/routing.example.json"), "--policy",
                               SourcePath("config/policy.example.json"), "--http-drain-delay-ms", "3000"},
      log);
  const int port = brain->port();
  // Ready once its workers are connected and waiting too (503 workers_not_ready until then).
  ASSERT_TRUE(WaitFor([&] { return HttpGet(port, "/readyz").status == 200; }, 10s)) << ReadFile(log);
  EXPECT_EQ(ReadFile(log).find("cogo-orchestrator-brain ready") != std::string::npos, true) << ReadFile(log);
  brain->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return HttpGet(port, "/readyz").status == 503; }, 2s)) << ReadFile(log);
  ExpectJsonError(HttpGet(port, "/readyz"), 503, "draining", "after SIGTERM");
  EXPECT_EQ(HttpGet(port, "/healthz").status, 200);  // still serving
  EXPECT_EQ(brain->Wait(30s), 0);
  EXPECT_EQ(HttpGet(port, "/healthz").status, 0);  // then gone
}

TEST_F(BrainTest, ListensOnLoopbackByDefault) {
  const auto brain = StartBrain();
  EXPECT_NE(ReadFile(brain->log()).find("listening on http://127.0.0.1:" + std::to_string(brain->port())),
            std::string::npos) << ReadFile(brain->log());
}

}  // namespace
}  // namespace cogo::testing
