// Secrets never leave the process: the edge and the brain run at debug level while a client
// provokes every refusal it can (bad tokens, wrong keys, oversize and malformed bodies, unknown
// paths) and reads the admin state; then every response body and header, both daemons' logs and
// `--print-config` of every daemon are searched for the JWT secret, the publishable key, a
// database password, the provider key and the webhook secret. (Every daemon's log under real
// traffic: deploy_pm2.)
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "cogo/auth/jwt.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;

class SecretsTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ExportEdgeSecrets();
    setenv("COGO_LOG_LEVEL", "debug", 1);
  }
  void TearDown() override { unsetenv("COGO_LOG_LEVEL"); }
};

std::string Seen(const HttpResult& r) {
  std::string text = std::to_string(r.status) + " " + r.body;
  for (const auto& [name, value] : r.headers) text += "\n" + name + ": " + value;
  return text + "\n";
}

TEST_F(SecretsTest, NoSecretInLogsErrorBodiesStateOrPrintConfig) {
  const auto log = ScratchFile("secrets.log");
  std::string seen;
  {
    Daemon brain("cogo-orchestrator-brain",
                 {"--routing", SourcePath("config/routing.example.json"), "--policy",
                  SourcePath("config/policy.example.json"), "--poll-ms", "100"},
                 log);
    Daemon edge("cogo-edge", {"--routing", SourcePath("config/routing.example.json")}, log);
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    const auto service = auth::MintToken(kTestJwtSecret, {auth::Role::kServiceRole, "", "ops", std::nullopt}, now,
                                         std::chrono::hours(1));
    const auto tenant = auth::MintToken(kTestJwtSecret, {auth::Role::kAuthenticated, "acme", "u", std::nullopt}, now,
                                        std::chrono::hours(1));
    const auto expired = auth::MintToken(kTestJwtSecret, {auth::Role::kAuthenticated, "acme", "u", std::nullopt},
                                         now - 7200, std::chrono::hours(1));
    const auto forged = auth::MintToken(std::string(kTestJwtSecret) + "x",
                                        {auth::Role::kServiceRole, "", "ops", std::nullopt}, now, std::chrono::hours(1));
    const std::string path = "/functions/v1/orchestrator-chat";
    const std::string body = R"({"tenant":"acme","intent":"chat","payload":{"message":"hi"}})";
    auto edge_auth = [&](const std::string& token, const std::string& key = kTestPublishableKey) {
      return std::map<std::string, std::string>{{"Authorization", "Bearer " + token}, {"apikey", key}};
    };
    std::map<std::string, std::string> many;
    for (int i = 0; i < 80; ++i) many["X-Filler-" + std::to_string(i)] = "1";
    const std::vector<HttpResult> results = {
        HttpPost(edge.port(), path, body, edge_auth(tenant)),
        HttpPost(edge.port(), path, body, edge_auth(expired)),
        HttpPost(edge.port(), path, body, edge_auth(forged)),
        HttpPost(edge.port(), path, body, edge_auth(tenant, std::string(kTestPublishableKey) + "x")),
        HttpPost(edge.port(), path, body, {{"apikey", kTestPublishableKey}}),
        HttpPost(edge.port(), path, R"({"tenant":)", edge_auth(tenant)),
        HttpPost(edge.port(), path, std::string(300000, 'x'), edge_auth(tenant)),
        HttpGet(edge.port(), path + "/1", edge_auth(tenant)),
        HttpGet(edge.port(), "/nowhere", many),
        HttpGet(edge.port(), "/readyz"),
        HttpGet(edge.port(), "/openapi.json"),
        HttpPost(brain.port(), "/api/orchestrator/execute", body, {{"Authorization", "Bearer " + forged}}),
        HttpPost(brain.port(), "/api/orchestrator/execute", body, {{"Authorization", "Bearer " + tenant}}),
        HttpPost(brain.port(), "/api/orchestrator/execute", body, {{"Authorization", "Bearer " + service}}),
        HttpPost(brain.port(), "/api/orchestrator/plan", "{", {{"Authorization", "Bearer " + service}}),
        HttpGet(brain.port(), "/api/orchestrator/state", {{"Authorization", "Bearer " + service}}),
        HttpGet(brain.port(), "/api/messages/1", {{"Authorization", "Bearer " + expired}}),
        HttpGet(brain.port(), "/openapi.json"),
    };
    for (const auto& r : results) seen += Seen(r);
    EXPECT_EQ(results[0].status, 202) << results[0].body;
    EXPECT_EQ(results[15].status, 200) << results[15].body;  // the state was really read
  }  // both daemons drained and exited: their logs are complete
  const auto logs = ReadFile(log);
  ASSERT_NE(logs.find("listening on"), std::string::npos) << logs;
  ASSERT_NE(logs.find("-> 401 bad_signature"), std::string::npos) << logs;  // refusals were logged
  // Every daemon's --print-config masks a database password given on the command line and shows
  // none of the secrets its environment holds.
  constexpr const char* kDatabasePassword = "db-password-5f1c";
  constexpr const char* kProviderKey = "sk-provider-key-8e2a";
  constexpr const char* kNotifySecret = "notify-secret-41d7";
  setenv("COGO_PROVIDER_API_KEY", kProviderKey, 1);
  setenv("COGO_NOTIFY_SECRET", kNotifySecret, 1);
  const std::string url = std::string("postgresql://cogo:") + kDatabasePassword + "@db.internal:5432/cogo";
  int daemons = 0;
  for (const auto& entry : std::filesystem::directory_iterator(SourcePath("src/bin"))) {
    const std::string daemon = entry.path().filename();
    if (daemon == "cogo" || daemon == "cogo-test-worker") continue;
    const auto printed = RunCommand(daemon, {"--print-config", "--database-url", url});
    EXPECT_EQ(printed.status, 0) << daemon << ": " << printed.output;
    EXPECT_NE(printed.output.find("postgresql://cogo:***@db.internal:5432/cogo"), std::string::npos)
        << daemon << ": " << printed.output;
    seen += printed.output;
    ++daemons;
  }
  unsetenv("COGO_PROVIDER_API_KEY");
  unsetenv("COGO_NOTIFY_SECRET");
  EXPECT_GE(daemons, 12);
  for (const char* secret : {kProviderKey, kNotifySecret}) {
    EXPECT_EQ(seen.find(secret), std::string::npos) << "--print-config shows " << secret;
  }
  for (const char* secret : {kTestJwtSecret, kTestPublishableKey, kDatabasePassword}) {
    EXPECT_EQ(seen.find(secret), std::string::npos) << "responses or --print-config show " << secret;
    EXPECT_EQ(logs.find(secret), std::string::npos) << "the logs show " << secret;
  }
}

}  // namespace
}  // namespace cogo::testing
