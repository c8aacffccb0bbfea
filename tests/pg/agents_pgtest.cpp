// Agent versions and decision quality with the real brain (and, where decisions must finish,
// the real executor and a test worker on the rules' route) on a real PostgreSQL: seeding from
// the routing rules without clobbering an operator's changes, the weighted choice recorded per
// decision, the /api/agents operations and their audit trail, the CLI, and feedback turning the
// quality figure; bad bodies are 4xx and write nothing.
#include <nlohmann/json.hpp>

#include <fstream>

#include "cogo/auth/jwt.h"
#include "fake_openai.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::map<std::string, std::string> Token(const std::string& role, const std::string& tenant = "") {
  return {{"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, role, tenant, "ann")}};
}
const auto kService = Token("service_role");

// A POST and the answer it must get (`error` empty: any body).
struct PostCase {
  const char* name;
  std::string path;
  std::string body;
  std::map<std::string, std::string> headers;
  int status;
  std::string error;
};

class AgentsTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ExportEdgeSecrets();
  }
  std::unique_ptr<Daemon> StartBrain(const std::string& log, const std::string& routing = SourcePath("config/routing.example.json"),
                                     std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--routing", routing, "--policy", SourcePath("config/policy.example.json"),
                                  "--workflows", SourcePath("config/workflows"), "--poll-ms", "100",
                                  "--versions-refresh-ms", "100"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Daemon>("cogo-orchestrator-brain", args, log);
  }
  // A worker on the example rules' route (gateway/chat) that completes everything.
  static std::unique_ptr<WorkerDaemon> StartChatWorker(const std::string& log, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--service", "gateway", "--role", "chat", "--poll-ms", "100", "--concurrency", "8"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<WorkerDaemon>("cogo-test-worker", args, log);
  }
  static std::string Version(const std::string& agent, const std::string& version, const std::string& column) {
    return ScalarText("SELECT " + column + "::text FROM agent_versions WHERE agent_id = '" + agent +
                      "' AND version = '" + version + "'");
  }
  static HttpResult Act(int port, const std::string& agent, const std::string& version, const std::string& action,
                        const std::string& body = "{}") {
    return HttpPost(port, "/api/agents/" + agent + "/versions/" + version + "/" + action, body, kService);
  }
  // Publishes `n` decide messages for `intent`; returns when every decision's execution ended.
  void Decide(int n, const std::string& intent) {
    for (int i = 0; i < n; ++i) {
      (void)bus_->Publish(Message(R"({"tenant":"tenant-a","intent":")" + intent + R"(","payload":{"message":"hi"}})",
                                  "orchestrator", "decide"));
    }
  }
  static bool AllFinished() {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status IN ('queued', 'running')") == 0;
  }
};

TEST_F(AgentsTest, TheBrainSeedsVersionsFromTheRoutingRulesAndNeverClobbersAnOperatorsChanges) {
  const auto log = ScratchFile("agents-seed.log");
  {
    const auto brain = StartBrain(log);
    EXPECT_EQ(Version("chat-assistant", "1.0.0", "status"), "active");
    EXPECT_EQ(Version("chat-assistant", "1.0.0", "weight"), "100.00");
    EXPECT_EQ(Version("summarizer", "1.0.0", "model"), "offline-deterministic");
    // One per agent rule of the example routing: chat, summarize, ask.
    EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_version_events WHERE action = 'seeded' AND actor = 'routing'"), 3);
    const auto proposed = HttpPost(brain->port(), "/api/agents/chat-assistant/versions",
                                   R"({"version":"2.0.0","model":"gpt-4o-mini","note":"cheaper"})", kService);
    ASSERT_EQ(proposed.status, 201) << proposed.body;
    ASSERT_EQ(Act(brain->port(), "chat-assistant", "2.0.0", "promote").status, 200);
  }
  // A restart seeds nothing over the operator's promotion.
  const auto brain = StartBrain(log);
  EXPECT_EQ(Version("chat-assistant", "2.0.0", "status"), "active");
  EXPECT_EQ(Version("chat-assistant", "1.0.0", "status"), "retired");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_version_events WHERE action = 'seeded'"), 3);
  // The proposal took the active version's budget and TTL, and the model it named.
  EXPECT_EQ(Version("chat-assistant", "2.0.0", "model"), "gpt-4o-mini");
  EXPECT_EQ(Version("chat-assistant", "2.0.0", "max_tokens"), "4000");
  EXPECT_EQ(Version("chat-assistant", "2.0.0", "ttl_ms"), "60000");
}

TEST_F(AgentsTest, EachDecisionRecordsTheWeightedVersionAndWhetherItWasACanary) {
  const auto log = ScratchFile("agents-canary.log");
  const auto brain = StartBrain(log);
  ASSERT_EQ(HttpPost(brain->port(), "/api/agents/chat-assistant/versions", R"({"version":"2.0.0","model":"gpt-4o-mini"})",
                     kService).status, 201);
  const auto canary = Act(brain->port(), "chat-assistant", "2.0.0", "canary", R"({"weight":30,"reason":"try it"})");
  ASSERT_EQ(canary.status, 200) << canary.body;
  EXPECT_EQ(Version("chat-assistant", "1.0.0", "weight"), "70.00");
  constexpr int kDecisions = 300;
  Decide(kDecisions, "chat");
  ASSERT_TRUE(WaitFor([] { return Scalar<int64_t>("SELECT count(*) FROM decisions") == kDecisions; }, 60s))
      << "see " << log;
  const auto canaries = Scalar<int64_t>("SELECT count(*) FROM decisions WHERE version = '2.0.0'");
  EXPECT_NEAR(canaries, kDecisions * 0.3, kDecisions * 0.08);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE canary <> (version = '2.0.0')"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE version = '2.0.0' AND model <> 'gpt-4o-mini'"), 0);
  // The execute message carries what the decision says.
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions d JOIN agent_messages m ON m.parent_id = d.message_id "
                            "WHERE m.payload->'__assignment'->>'version' <> d.version "
                            "OR m.payload->'__assignment'->>'model' <> d.model"), 0);
  // The other agent has no canary: all its decisions go to its one version.
  Decide(20, "summarize");
  ASSERT_TRUE(WaitFor([] { return Scalar<int64_t>("SELECT count(*) FROM decisions WHERE agent_id = 'summarizer'") == 20; }));
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE agent_id = 'summarizer' AND (canary OR version <> '1.0.0')"), 0);

  const auto state = json::parse(HttpGet(brain->port(), "/api/orchestrator/state", kService).body);
  const auto& versions = state["agents"]["chat-assistant"]["versions"];
  ASSERT_EQ(versions.size(), 2u) << state["agents"];
  EXPECT_EQ(versions[1]["version"], "2.0.0");
  EXPECT_EQ(versions[1]["status"], "canary");
  EXPECT_EQ(versions[1]["weight"], 30.0);
  EXPECT_TRUE(versions[1]["since"].is_string());
  EXPECT_EQ(versions[1]["live"]["decisions"], canaries);
  EXPECT_EQ(versions[0]["live"]["decisions"].get<int64_t>() + canaries, kDecisions);

  // Rolling the canary back sends everything to 1.0.0 again, without a restart.
  ASSERT_EQ(Act(brain->port(), "chat-assistant", "2.0.0", "rollback", R"({"reason":"enough"})").status, 200);
  std::this_thread::sleep_for(300ms);  // past --versions-refresh-ms
  Decide(50, "chat");
  ASSERT_TRUE(WaitFor([] { return Scalar<int64_t>("SELECT count(*) FROM decisions WHERE agent_id = 'chat-assistant'") == kDecisions + 50; }));
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE id > " + std::to_string(kDecisions + 20) +
                            " AND version = '2.0.0'"), 0);
}

TEST_F(AgentsTest, OperationsThroughTheApiAreCheckedAndAudited) {
  const auto log = ScratchFile("agents-api.log");
  const auto brain = StartBrain(log);
  const int port = brain->port();
  const std::string versions = "/api/agents/chat-assistant/versions";
  const std::vector<PostCase> cases = {
      {"no token", versions, R"({"version":"2.0.0"})", {}, 401, "missing_token"},
      {"a tenant token", versions, R"({"version":"2.0.0"})", Token("authenticated", "acme"), 403, "service_role_required"},
      {"the operator tenant's token", versions, R"({"version":"2.0.0"})", Token("authenticated", "ops"), 403,
       "service_role_required"},
      {"canary with a tenant token", versions + "/1.0.0/canary", R"({"weight":10})", Token("authenticated", "ops"), 403,
       "service_role_required"},
      {"promote with a tenant token", versions + "/1.0.0/promote", "", Token("authenticated", "ops"), 403,
       "service_role_required"},
      {"rollback with a tenant token", versions + "/1.0.0/rollback", "", Token("authenticated", "acme"), 403,
       "service_role_required"},
      {"malformed", versions, R"({"version":)", kService, 400, "malformed_json"},
      {"unknown field", versions, R"({"version":"2.0.0","colour":"red"})", kService, 400, "unknown_field"},
      {"bad version name", versions, R"({"version":"2.0.0 beta"})", kService, 400, "invalid_field"},
      {"budget of the wrong type", versions, R"({"version":"2.0.0","budget":{"maxCostUsd":"lots"}})", kService, 400, "wrong_type"},
      {"an agent no rule names", "/api/agents/nobody/versions", R"({"version":"1","model":"gpt-4o-mini","budget":{"maxCostUsd":0.1,"maxTokens":10},"ttl_ms":1000})",
       kService, 422, "unknown_agent"},
      {"a model the policy refuses", versions, R"({"version":"2.0.0","model":"gpt-4o"})", kService, 422, "policy_model_not_allowed"},
      {"a budget over the policy's cap", versions, R"({"version":"2.0.0","budget":{"maxCostUsd":5}})", kService, 422,
       "policy_budget_over_cap"},
      {"propose", versions, R"({"version":"2.0.0","model":"gpt-4o-mini"})", kService, 201, ""},
      {"propose again", versions, R"({"version":"2.0.0"})", kService, 409, "version_exists"},
      {"canary without a weight", versions + "/2.0.0/canary", "{}", kService, 400, "missing_field"},
      {"canary over 100", versions + "/2.0.0/canary", R"({"weight":101})", kService, 400, "invalid_field"},
      {"canary of an unknown version", versions + "/9.9.9/canary", R"({"weight":10})", kService, 404, "unknown_version"},
      {"canary", versions + "/2.0.0/canary", R"({"weight":10})", kService, 200, ""},
      {"canary of the active version", versions + "/1.0.0/canary", R"({"weight":10})", kService, 409, "already_active"},
      {"promote", versions + "/2.0.0/promote", "", kService, 200, ""},
      {"promote again", versions + "/2.0.0/promote", "", kService, 409, "already_active"},
      {"roll the promotion back", versions + "/2.0.0/rollback", R"({"reason":"too slow"})", kService, 200, ""},
      {"roll back a retired version", versions + "/2.0.0/rollback", "{}", kService, 409, "version_retired"},
  };
  for (const auto& c : cases) {
    const auto r = HttpPost(port, c.path, c.body, c.headers);
    if (c.error.empty()) {
      EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    } else {
      ExpectJsonError(r, c.status, c.error, c.name);
    }
  }
  EXPECT_EQ(Version("chat-assistant", "1.0.0", "status"), "active");
  EXPECT_EQ(Version("chat-assistant", "2.0.0", "status"), "retired");
  // Every change once, in order, with who and why.
  EXPECT_EQ(ScalarText("SELECT string_agg(version || ' ' || action, ', ' ORDER BY id) FROM agent_version_events "
                       "WHERE agent_id = 'chat-assistant' AND action <> 'seeded'"),
            "2.0.0 proposed, 1.0.0 weight, 2.0.0 canary, 1.0.0 retired, 2.0.0 promoted, 2.0.0 rolled_back, "
            "1.0.0 reactivated");
  EXPECT_EQ(ScalarText("SELECT actor || ' / ' || reason FROM agent_version_events WHERE action = 'rolled_back'"),
            "service_role:ann / too slow");
  const auto shown = json::parse(HttpGet(port, "/api/agents/chat-assistant", kService).body);
  EXPECT_EQ(shown["versions"].size(), 2u);
  EXPECT_EQ(shown["events"][0]["action"], "reactivated");
  EXPECT_EQ(HttpGet(port, "/api/agents/nobody", kService).status, 404);
}

TEST_F(AgentsTest, TheCliListsProposesAndActsLikeTheApi) {
  const auto log = ScratchFile("agents-cli.log");
  const auto brain = StartBrain(log);
  const auto cogo = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--database-url", DatabaseUrl()});
    ChildProcess cli("cogo", args, log);
    return cli.Wait(30s).value_or(-1);
  };
  EXPECT_EQ(cogo({"agents", "propose", "summarizer", "1.1.0", "--model", "gpt-4o-mini", "--routing",
                  SourcePath("config/routing.example.json"), "--policy", SourcePath("config/policy.example.json")}), 0)
      << ReadFile(log);
  EXPECT_EQ(cogo({"agents", "canary", "summarizer", "1.1.0", "--weight", "25", "--reason", "by hand"}), 0);
  EXPECT_EQ(Version("summarizer", "1.1.0", "weight"), "25.00");
  EXPECT_EQ(cogo({"agents", "promote", "summarizer", "1.1.0"}), 0);
  EXPECT_EQ(cogo({"agents", "promote", "summarizer", "1.1.0"}), 1);  // refused: already active
  EXPECT_EQ(cogo({"agents", "rollback", "summarizer", "no such"}), 2);  // not a version name
  EXPECT_EQ(cogo({"agents", "list", "--agent", "summarizer"}), 0);
  EXPECT_EQ(Version("summarizer", "1.1.0", "status"), "active");
  EXPECT_EQ(ScalarText("SELECT reason FROM agent_version_events WHERE action = 'canary'"), "by hand");
  EXPECT_EQ(ScalarText("SELECT count(*) FROM agent_version_events WHERE actor LIKE 'cli:%'"), "5");  // the canary moved two rows, the promotion two
}

// `cogo eval routing` against the running brain: the shipped set's two free-text items need
// the classifier, which the example routing leaves off, so they are refused: 4 of 6.
TEST_F(AgentsTest, EvalRoutingScoresALabelledSetThroughTheBrainsDecidePath) {
  const auto brain = StartBrain(ScratchFile("agents-eval-brain.log"));
  const auto eval = [&](const std::string& out, std::vector<std::string> extra,
                        const std::string& set = SourcePath("config/eval/routing.json")) {
    std::vector<std::string> args{"eval", "routing", "--set", set, "--brain-url",
                                  "http://127.0.0.1:" + std::to_string(brain->port())};
    args.insert(args.end(), extra.begin(), extra.end());
    ChildProcess cli("cogo", args, out);
    return cli.Wait(30s).value_or(-1);
  };
  const auto out = ScratchFile("agents-eval.json");
  ASSERT_EQ(eval(out, {}), 0) << ReadFile(out);
  const auto score = json::parse(ReadFile(out));
  EXPECT_EQ(score["items"], 6);
  EXPECT_EQ(score["correct"], 4);
  EXPECT_EQ(score["confusion"]["chat"]["chat"], 2);
  EXPECT_EQ(score["confusion"]["chat"]["(none)"], 1);
  EXPECT_EQ(score["confusion"]["summarize"]["summarize"], 2);
  ASSERT_EQ(score["wrong"].size(), 2u);
  EXPECT_EQ(score["wrong"][0]["refused"], "unknown_intent");
  // For CI: below the threshold the exit status says so.
  EXPECT_EQ(eval(ScratchFile("agents-eval-strict.json"), {"--min-accuracy", "0.85"}), 1);
  EXPECT_EQ(eval(ScratchFile("agents-eval-bad.json"), {}, SourcePath("config/routing.example.json")), 2);
}

// With the classifier enabled (a hosted model: the fake OpenAI server), the free-text items go
// through it on the brain's decide path and the same set scores 6 of 6.
TEST_F(AgentsTest, EvalRoutingAsksTheClassifierWhenItIsEnabled) {
  FakeOpenAI model;
  model.Play([](int, const httplib::Request& request, httplib::Response& response) {
    const std::string asked = json::parse(request.body)["messages"].back()["content"];
    const std::string intent = asked.find("gist") != std::string::npos ? "summarize" : "chat";
    ReplyJson(response, {{"id", "c"}, {"model", "gpt-4o-mini"},
                         {"choices", {{{"index", 0}, {"finish_reason", "stop"},
                                       {"message", {{"role", "assistant"}, {"content", intent}}}}}},
                         {"usage", {{"prompt_tokens", 50}, {"completion_tokens", 1}, {"total_tokens", 51}}}});
  });
  auto routing = json::parse(ReadFile(SourcePath("config/routing.example.json")));
  routing["classifier"]["enabled"] = true;
  const auto routing_file = ScratchFile("agents-eval-classifier-routing.json");
  std::ofstream(routing_file) << routing.dump();
  const auto brain = StartBrain(ScratchFile("agents-eval-classifier-brain.log"), routing_file,
                                {"--provider-base-url", model.base_url()});
  const auto out = ScratchFile("agents-eval-classifier.json");
  ChildProcess cli("cogo", {"eval", "routing", "--set", SourcePath("config/eval/routing.json"), "--brain-url",
                            "http://127.0.0.1:" + std::to_string(brain->port()), "--min-accuracy", "0.85"},
                   out);
  ASSERT_EQ(cli.Wait(30s).value_or(-1), 0) << ReadFile(out);
  const auto score = json::parse(ReadFile(out));
  EXPECT_EQ(score["correct"], 6) << score.dump();
  EXPECT_EQ(score["accuracy"], 1.0);
  EXPECT_EQ(score["confusion"]["summarize"]["summarize"], 3);
  EXPECT_EQ(score["confusion"]["chat"]["chat"], 3);
  EXPECT_EQ(model.seen().size(), 2u);  // only the intents no rule names were classified
}

TEST_F(AgentsTest, FeedbackOverridesTheOutcomeInTheQualityFigure) {
  const auto log = ScratchFile("agents-quality.log");
  const auto brain = StartBrain(log);
  const auto executor = StartExecutor(log);
  const auto worker = StartChatWorker(log);
  Decide(4, "chat");
  ASSERT_TRUE(WaitFor([] { return Scalar<int64_t>("SELECT count(*) FROM decisions") == 4 && AllFinished(); }, 30s))
      << "see " << log;
  const auto quality = [&](const std::string& tenant_token_tenant = "") {
    const auto token = tenant_token_tenant.empty() ? kService : Token("authenticated", tenant_token_tenant);
    const auto r = HttpGet(brain->port(), "/api/decisions/quality?agent=chat-assistant", token);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body);
  };
  auto q = quality();
  EXPECT_EQ(q["total"]["decisions"], 4);
  EXPECT_EQ(q["total"]["judged"], 4);
  EXPECT_EQ(q["total"]["quality"], 1.0);
  ASSERT_EQ(q["rows"].size(), 1u);
  EXPECT_EQ(q["rows"][0]["intent"], "chat");
  EXPECT_EQ(q["rows"][0]["version"], "1.0.0");

  // A person says one decision was wrong: it should have been summarize.
  const auto r = HttpPost(brain->port(), "/api/decisions/1/feedback", R"({"correct":false,"expected_intent":"summarize"})",
                          Token("authenticated", "tenant-a"));
  ASSERT_EQ(r.status, 201) << r.body;
  q = quality();
  EXPECT_EQ(q["total"]["correct"], 3);
  EXPECT_EQ(q["total"]["quality"], 0.75);
  EXPECT_EQ(q["rows"][0]["with_feedback"], 1);
  // The newest label counts.
  ASSERT_EQ(HttpPost(brain->port(), "/api/decisions/1/feedback", R"({"correct":true})", kService).status, 201);
  EXPECT_EQ(quality()["total"]["quality"], 1.0);
  EXPECT_EQ(ScalarText("SELECT expected_intent FROM decision_outcomes WHERE decision_id = 1"), "");
  // A tenant sees its own decisions only.
  EXPECT_EQ(quality("globex")["total"]["decisions"], 0);
  EXPECT_EQ(quality("tenant-a")["total"]["decisions"], 4);
  // The same figures as the view the metrics server reads.
  EXPECT_EQ(ScalarText("SELECT quality::text FROM decision_quality WHERE agent_id = 'chat-assistant'"), "1.0000");
}

TEST_F(AgentsTest, BadFeedbackIsRefusedWithAReasonAndWritesNothing) {
  const auto log = ScratchFile("agents-feedback.log");
  const auto brain = StartBrain(log);
  Decide(1, "chat");
  ASSERT_TRUE(WaitFor([] { return Scalar<int64_t>("SELECT count(*) FROM decisions") == 1; }));
  const std::string path = "/api/decisions/1/feedback";
  const std::vector<PostCase> cases = {
      {"no token", path, R"({"correct":true})", {}, 401, "missing_token"},
      {"empty body", path, "", kService, 400, "malformed_json"},
      {"malformed", path, R"({"correct":)", kService, 400, "malformed_json"},
      {"not an object", path, "[true]", kService, 400, "not_an_object"},
      {"missing correct", path, R"({"expected_intent":"chat"})", kService, 400, "missing_field"},
      {"correct as text", path, R"({"correct":"yes"})", kService, 400, "wrong_type"},
      {"correct as null", path, R"({"correct":null})", kService, 400, "wrong_type"},
      {"unknown field", path, R"({"correct":true,"score":5})", kService, 400, "unknown_field"},
      {"duplicate field", path, R"({"correct":true,"correct":false})", kService, 400, "duplicate_field"},
      {"intent not a name", path, R"({"correct":false,"expected_intent":"Chat Now"})", kService, 400, "invalid_field"},
      {"oversize", path, R"({"correct":true,"pad":")" + std::string(20000, 'x') + "\"}", kService, 413, "body_too_large"},
      {"unknown decision", "/api/decisions/999/feedback", R"({"correct":true})", kService, 404, "not_found"},
      {"not an id", "/api/decisions/abc/feedback", R"({"correct":true})", kService, 404, "not_found"},
      {"another tenant's decision", path, R"({"correct":true})", Token("authenticated", "globex"), 404, "not_found"},
  };
  for (const auto& c : cases) ExpectJsonError(HttpPost(brain->port(), c.path, c.body, c.headers), c.status, c.error, c.name);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decision_feedback"), 0);
  EXPECT_EQ(HttpGet(brain->port(), "/api/decisions/quality?days=0", kService).status, 400);
  EXPECT_EQ(HttpGet(brain->port(), "/api/decisions/quality?days=x", kService).status, 400);
}

}  // namespace
}  // namespace cogo::testing
