// cogo-edge over real HTTP and real PostgreSQL: the JWT and body matrices (each refusal its 4xx
// code and nothing enqueued), the rate limit, tenant scoping, readiness, and a request end to
// end: POST -> 202 -> the result through GET with the trail decide -> execute -> gateway/chat.
#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include <chrono>
#include <map>
#include <thread>

#include "cogo/auth/jwt.h"
#include "cogo/db/connection.h"
#include "cogo/edge/edge_server.h"
#include "cogo/http/json_service.h"
#include "front_support.h"
#include "log_sink.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kPath = "/functions/v1/orchestrator-chat";

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Token(const std::string& tenant, auth::Role role = auth::Role::kAuthenticated,
                  int64_t issued = Now(), std::optional<int64_t> nbf = std::nullopt,
                  const std::string& secret = kTestJwtSecret) {
  return auth::MintToken(secret, {role, tenant, "user-1", nbf}, issued, std::chrono::hours(1));
}

std::string Base64Url(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  int val = 0;
  int bits = -6;
  for (unsigned char c : in) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out.push_back(kAlphabet[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(kAlphabet[((val << 8) >> (bits + 8)) & 0x3F]);
  return out;
}

std::map<std::string, std::string> Auth(const std::string& token) {
  return {{"Authorization", "Bearer " + token}, {"apikey", kTestPublishableKey}};
}

std::string Body(const std::string& tenant = "acme", const std::string& intent = "chat") {
  return json{{"tenant", tenant}, {"intent", intent}, {"payload", {{"message", "hello edge"}}}}.dump();
}

int64_t Messages() { return Scalar<int64_t>("SELECT count(*) FROM agent_messages"); }

class EdgeTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ExportEdgeSecrets();
  }
  std::unique_ptr<Daemon> StartEdge(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--routing", SourcePath("config/routing.example.json")};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Daemon>("cogo-edge", args, ScratchFile("edge.log"));
  }
};

TEST_F(EdgeTest, JwtMatrixRefusesEachWithItsCodeAndEnqueuesNothing) {
  const auto edge = StartEdge();
  const auto alg_none = Base64Url(R"({"alg":"none","typ":"JWT"})") + "." +
                        Base64Url(json{{"role", "authenticated"}, {"tenant", "acme"}, {"exp", Now() + 3600}}.dump()) + ".";
  struct Case {
    const char* name;
    std::map<std::string, std::string> headers;
    int status;
    const char* error;
  };
  const std::vector<Case> cases = {
      {"bad signature", Auth(Token("acme", auth::Role::kAuthenticated, Now(), std::nullopt, "another-secret-0123456789abcdef")), 401, "bad_signature"},
      {"expired", Auth(Token("acme", auth::Role::kAuthenticated, Now() - 7200)), 401, "token_expired"},
      {"not yet valid", Auth(Token("acme", auth::Role::kAuthenticated, Now(), Now() + 3600)), 401, "token_not_yet_valid"},
      {"alg none", Auth(alg_none), 401, "alg_not_allowed"},
      {"wrong tenant", Auth(Token("globex")), 403, "tenant_mismatch"},
      {"missing apikey", {{"Authorization", "Bearer " + Token("acme")}}, 401, "missing_apikey"},
      {"wrong apikey", {{"Authorization", "Bearer " + Token("acme")}, {"apikey", "pk_wrong"}}, 401, "bad_apikey"},
      {"missing Authorization", {{"apikey", kTestPublishableKey}}, 401, "missing_token"},
      {"not a bearer", {{"Authorization", "Basic dXNlcjpwdw=="}, {"apikey", kTestPublishableKey}}, 401, "malformed_token"},
  };
  for (const auto& c : cases) {
    ExpectJsonError(HttpPost(edge->port(), kPath, Body(), c.headers), c.status, c.error, c.name);
    EXPECT_EQ(Messages(), 0) << c.name;
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events"), 0);

  const auto good = HttpPost(edge->port(), kPath, Body(), Auth(Token("acme")));
  ASSERT_EQ(good.status, 202) << good.body;
  const auto id = json::parse(good.body)["id"].get<int64_t>();
  EXPECT_EQ(ScalarText("SELECT service || '/' || role || '/' || shard || '/' || tenant FROM agent_messages WHERE id = " + std::to_string(id)),
            "orchestrator/decide/0/acme");
  const auto payload = json::parse(ScalarText("SELECT payload::text FROM agent_messages WHERE id = " + std::to_string(id)));
  EXPECT_EQ(payload["intent"], "chat");
  EXPECT_EQ(payload["payload"]["message"], "hello edge");
  EXPECT_EQ(payload["request"]["role"], "authenticated");
  // service_role may act for any tenant.
  EXPECT_EQ(HttpPost(edge->port(), kPath, Body("globex"), Auth(Token("", auth::Role::kServiceRole))).status, 202);
  EXPECT_EQ(Messages(), 2);
}

TEST_F(EdgeTest, BodyMatrixRefusesEachWithItsCodeAndEnqueuesNothing) {
  const auto edge = StartEdge({"--max-body-bytes", "4096", "--max-depth", "8"});
  const auto auth = Auth(Token("acme"));
  std::string deep = R"({"tenant":"acme","intent":"chat","payload":)";
  for (int i = 0; i < 20; ++i) deep += R"({"a":)";
  deep += "1";
  for (int i = 0; i < 20; ++i) deep += "}";
  deep += "}";
  struct Case {
    const char* name;
    std::string body;
    int status;
    const char* error;
  };
  const std::vector<Case> cases = {
      {"malformed JSON", R"({"tenant":"acme","intent":)", 400, "malformed_json"},
      {"oversize", json{{"tenant", "acme"}, {"intent", "chat"}, {"payload", {{"m", std::string(5000, 'x')}}}}.dump(), 413, "body_too_large"},
      {"far oversize", json{{"tenant", "acme"}, {"intent", "chat"}, {"payload", {{"m", std::string(3 << 20, 'x')}}}}.dump(), 413, "body_too_large"},
      {"deep nesting", deep, 400, "too_deep"},
      {"tenant not a string", R"({"tenant":42,"intent":"chat"})", 400, "wrong_type"},
      {"payload not an object", R"({"tenant":"acme","intent":"chat","payload":[1,2]})", 400, "wrong_type"},
      {"missing intent", R"({"tenant":"acme"})", 400, "missing_field"},
      {"unknown field", R"({"tenant":"acme","intent":"chat","admin":true})", 400, "unknown_field"},
      {"unknown intent", Body("acme", "launch-rockets"), 422, "unknown_intent"},
  };
  for (const auto& c : cases) {
    const auto r = HttpPost(edge->port(), kPath, c.body, auth);
    if (std::string(c.name) == "far oversize" && r.status == 0) continue;  // cut off mid-send
    ExpectJsonError(r, c.status, c.error, c.name);
    EXPECT_EQ(Messages(), 0) << c.name;
  }
  auto text = auth;
  text["Content-Type"] = "text/plain";
  ExpectJsonError(HttpPost(edge->port(), kPath, Body(), text), 415, "unsupported_media_type", "text/plain");
  ExpectJsonError(HttpGet(edge->port(), "/nowhere"), 404, "not_found", "unknown path");
  EXPECT_EQ(Messages(), 0);
}

TEST_F(EdgeTest, RateLimitAnswers429WithRetryAfterPerTenant) {
  const auto edge = StartEdge({"--rate-per-s", "0.01", "--rate-burst", "2"});
  EXPECT_EQ(HttpPost(edge->port(), kPath, Body(), Auth(Token("acme"))).status, 202);
  EXPECT_EQ(HttpPost(edge->port(), kPath, Body(), Auth(Token("acme"))).status, 202);
  const auto limited = HttpPost(edge->port(), kPath, Body(), Auth(Token("acme")));
  ExpectJsonError(limited, 429, "rate_limited", "third request");
  ASSERT_TRUE(limited.headers.count("Retry-After"));
  EXPECT_GE(std::stoi(limited.headers.at("Retry-After")), 1);
  EXPECT_EQ(Messages(), 2);
  // Another tenant has its own bucket.
  EXPECT_EQ(HttpPost(edge->port(), kPath, Body("globex"), Auth(Token("globex"))).status, 202);
}

TEST_F(EdgeTest, IdempotencyKeyReturnsTheFirstRequest) {
  const auto edge = StartEdge();
  auto headers = Auth(Token("acme"));
  headers["Idempotency-Key"] = "order-17";
  const auto first = HttpPost(edge->port(), kPath, Body(), headers);
  const auto second = HttpPost(edge->port(), kPath, Body(), headers);
  ASSERT_EQ(first.status, 202);
  ASSERT_EQ(second.status, 202);
  EXPECT_EQ(json::parse(first.body)["id"], json::parse(second.body)["id"]);
  EXPECT_TRUE(json::parse(second.body).value("duplicate", false));
  EXPECT_EQ(Messages(), 1);
}

// Requests that arrive while another is being written share its successor's transaction
// (base::FlatCombiner in the edge): each still gets its own message, a key shared by concurrent
// requests still names one message, and fewer transactions than messages wrote them.
TEST_F(EdgeTest, ConcurrentRequestsShareInsertsAndEachGetsItsOwnMessage) {
  const auto edge = StartEdge({"--rate-per-s", "0", "--http-threads", "16"});
  constexpr int kThreads = 12;
  constexpr int kEach = 20;
  struct Sent {
    std::string text;
    std::string key;
    int status = 0;
    int64_t id = 0;
    bool duplicate = false;
  };
  std::vector<std::vector<Sent>> sent(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const std::string tenant = t % 2 == 0 ? "acme" : "beta";
        for (int i = 0; i < kEach; ++i) {
          Sent s;
          s.text = "request " + std::to_string(t) + "-" + std::to_string(i);
          auto headers = Auth(Token(tenant));
          // Threads 0 and 2 (both acme) send the same keys at the same moments.
          if (t == 0 || t == 2) {
            s.key = "shared-" + std::to_string(i);
            headers["Idempotency-Key"] = s.key;
          }
          const auto r = HttpPost(edge->port(), kPath,
                                  json{{"tenant", tenant}, {"intent", "chat"}, {"payload", {{"message", s.text}}}}.dump(),
                                  headers);
          s.status = r.status;
          if (r.status == 202) {
            const auto body = json::parse(r.body);
            s.id = body["id"].get<int64_t>();
            s.duplicate = body.value("duplicate", false);
          }
          sent[static_cast<size_t>(t)].push_back(s);
        }
      });
    }
  }
  std::map<int64_t, int> answers;  // id -> requests answered with it
  for (const auto& list : sent) {
    for (const auto& s : list) {
      ASSERT_EQ(s.status, 202) << s.text;
      ++answers[s.id];
      if (s.key.empty()) {
        EXPECT_EQ(ScalarText("SELECT payload->'payload'->>'message' FROM agent_messages WHERE id = " + std::to_string(s.id)),
                  s.text);
      }
    }
  }
  for (int i = 0; i < kEach; ++i) {  // one message per shared key; one of its two requests says duplicate
    const Sent& a = sent[0][static_cast<size_t>(i)];
    const Sent& b = sent[2][static_cast<size_t>(i)];
    EXPECT_EQ(a.id, b.id) << a.key;
    EXPECT_NE(a.duplicate, b.duplicate) << a.key;
    EXPECT_EQ(answers[a.id], 2) << a.key;
  }
  const int64_t expected = (kThreads - 2) * kEach + kEach;
  EXPECT_EQ(Messages(), expected);
  EXPECT_EQ(static_cast<int64_t>(answers.size()), expected) << "two requests without a key shared a message";
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE service = 'orchestrator' AND role = 'decide' "
                            "AND tenant = CASE WHEN payload->>'tenant' = 'acme' THEN 'acme' ELSE 'beta' END"),
            expected);
  EXPECT_LT(Scalar<int64_t>("SELECT count(DISTINCT xmin::text) FROM agent_messages"), expected)
      << "every request was written by its own transaction";
}

// A group the database refuses as a whole is written again one request at a time: only the
// request it concerns fails. The refusal is injected with a trigger that rejects one row (what
// a constraint, a deadlock between edges or a value the server cannot store would do).
TEST_F(EdgeTest, ARequestTheDatabaseRefusesFailsAloneNotTheOthersOfItsGroup) {
  const auto edge = StartEdge({"--rate-per-s", "0"});
  auto admin = db::Connect(DatabaseUrl(), "cogo-test-admin");
  pqxx::nontransaction(*admin).exec(R"SQL(
CREATE FUNCTION test_refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.payload->'payload'->>'message' = 'poison' THEN RAISE EXCEPTION 'poison refused'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_poison BEFORE INSERT ON agent_messages
  FOR EACH ROW EXECUTE FUNCTION test_refuse_poison();)SQL");
  struct DropOnExit {  // the next tests share the schema
    pqxx::connection& conn;
    ~DropOnExit() {
      pqxx::nontransaction(conn).exec(
          "DROP TRIGGER test_refuse_poison ON agent_messages; DROP FUNCTION test_refuse_poison()");
    }
  } drop{*admin};
  auto holder = db::Connect(DatabaseUrl(), "cogo-test-holder");
  auto hold = std::make_unique<pqxx::work>(*holder);
  hold->exec0("LOCK TABLE agent_messages IN SHARE MODE");  // inserts wait: the next ones queue
  const auto send = [&](const std::string& text) {
    return HttpPost(edge->port(), kPath,
                    json{{"tenant", "acme"}, {"intent", "chat"}, {"payload", {{"message", text}}}}.dump(),
                    Auth(Token("acme")));
  };
  HttpResult first;
  std::vector<HttpResult> queued(4);
  {
    std::jthread leader([&] { first = send("first"); });
    std::this_thread::sleep_for(300ms);  // its insert waits for the lock
    std::vector<std::jthread> others;
    for (size_t i = 0; i < queued.size(); ++i) {
      others.emplace_back([&, i] { queued[i] = send(i == 1 ? "poison" : "good " + std::to_string(i)); });
    }
    std::this_thread::sleep_for(500ms);  // they queue behind the first insert
    hold->commit();
  }
  EXPECT_EQ(first.status, 202) << first.body;
  for (size_t i = 0; i < queued.size(); ++i) {
    if (i == 1) {
      EXPECT_GE(queued[i].status, 500) << queued[i].body;
    } else {
      EXPECT_EQ(queued[i].status, 202) << i << ": " << queued[i].body;
    }
  }
  EXPECT_EQ(Messages(), 4);
}

// A payload jsonb cannot store (a NUL character) is refused by name before it is written.
TEST_F(EdgeTest, APayloadWithANulCharacterIsRefusedByName) {
  const auto edge = StartEdge({"--rate-per-s", "0"});
  const auto r = HttpPost(edge->port(), kPath,
                          json{{"tenant", "acme"}, {"intent", "chat"}, {"payload", {{"message", std::string("a\0b", 3)}}}}.dump(),
                          Auth(Token("acme")));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(json::parse(r.body).value("error", ""), "nul_character") << r.body;
  EXPECT_EQ(Messages(), 0);
}

TEST_F(EdgeTest, GetIsTenantScopedAndReadinessChecksTheSchema) {
  const auto edge = StartEdge();
  EXPECT_EQ(HttpGet(edge->port(), "/healthz").status, 200);
  const auto ready = HttpGet(edge->port(), "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  const auto posted = HttpPost(edge->port(), kPath, Body(), Auth(Token("acme")));
  ASSERT_EQ(posted.status, 202);
  const auto id = std::to_string(json::parse(posted.body)["id"].get<int64_t>());
  const auto mine = HttpGet(edge->port(), std::string(kPath) + "/" + id, Auth(Token("acme")));
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(json::parse(mine.body)["status"], "queued");
  ExpectJsonError(HttpGet(edge->port(), std::string(kPath) + "/" + id, Auth(Token("globex"))), 404, "not_found", "other tenant");
  ExpectJsonError(HttpGet(edge->port(), std::string(kPath) + "/999999", Auth(Token("acme"))), 404, "not_found", "absent");
  ExpectJsonError(HttpGet(edge->port(), std::string(kPath) + "/abc", Auth(Token("acme"))), 404, "not_found", "not an id");
  ExpectJsonError(HttpGet(edge->port(), std::string(kPath) + "/" + id, {{"apikey", kTestPublishableKey}}), 401, "missing_token", "no token");
  EXPECT_EQ(HttpGet(edge->port(), std::string(kPath) + "/" + id, Auth(Token("", auth::Role::kServiceRole))).status, 200);
}

// Edge -> brain (decide) -> executor -> gateway-chat -> result, over real HTTP and PostgreSQL.
TEST_F(EdgeTest, RequestTravelsEndToEndAndGetShowsResultAndTrail) {
  const auto edge = StartEdge();
  const auto log = ScratchFile("e2e.log");
  Daemon brain("cogo-orchestrator-brain",
               {"--routing", SourcePath("config/routing.example.json"), "--policy",
                SourcePath("config/policy.example.json"), "--workflows",
                SourcePath("config/workflows"), "--poll-ms", "100"},
               log);
  WorkerDaemon chat("cogo-gateway-chat",
                    {"--policy", SourcePath("config/policy.example.json"), "--poll-ms", "100"}, log);
  const auto executor = StartExecutor(log);

  const auto posted = HttpPost(edge->port(), kPath, Body(), Auth(Token("acme")));
  ASSERT_EQ(posted.status, 202) << posted.body;
  const auto id = std::to_string(json::parse(posted.body)["id"].get<int64_t>());
  json view;
  ASSERT_TRUE(WaitFor([&] {
    const auto r = HttpGet(edge->port(), std::string(kPath) + "/" + id, Auth(Token("acme")));
    if (r.status != 200) return false;
    view = json::parse(r.body);
    return view["status"] != "queued" && view["status"] != "running";
  }, 60s)) << "see " << log << "; last view: " << view.dump();
  ASSERT_EQ(view["status"], "done") << view.dump(2);
  EXPECT_EQ(view["result_from"]["route"], "gateway/chat");
  EXPECT_EQ(view["result"]["model"], "offline-deterministic");
  EXPECT_EQ(view["result"]["reply"].get<std::string>().rfind("[offline-deterministic] reply to: hello edge", 0), 0u)
      << view["result"];
  EXPECT_EQ(view["messages"].size(), 3u);

  std::vector<std::string> trail;
  for (const auto& e : view["trail"]) trail.push_back(e["route"].get<std::string>() + ":" + e["event"].get<std::string>());
  auto position = [&](const std::string& what) {
    return std::find(trail.begin(), trail.end(), what) - trail.begin();
  };
  const auto decided = position("orchestrator/decide:decided");
  const auto enqueued = position("orchestrator/execute:execute_enqueued");
  const auto done = position("orchestrator/execute:execute_done");
  const auto n = static_cast<long>(trail.size());
  EXPECT_LT(decided, n) << view["trail"].dump(1);
  EXPECT_LT(enqueued, n) << view["trail"].dump(1);
  EXPECT_LT(done, n) << view["trail"].dump(1);
  EXPECT_LT(decided, enqueued);
  EXPECT_LT(enqueued, done);
  EXPECT_LT(position("gateway/chat:completed"), n);

  // The decision is recorded, and usage was metered on the chat message.
  EXPECT_EQ(ScalarText("SELECT intent || ' ' || matched_by || ' ' || target || ' ' || source FROM decisions WHERE message_id = " + id),
            "chat rule gateway/chat decide");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM message_usage WHERE service = 'gateway' AND outcome = 'completed'"), 1);
  EXPECT_EQ(ScalarText("SELECT correlation_id FROM agent_messages WHERE role = 'execute'"), id);
}

TEST_F(EdgeTest, UnknownIntentPassesTheEdgeWithoutRoutingAndTheBrainFailsIt) {
  const auto edge = std::make_unique<Daemon>("cogo-edge", std::vector<std::string>{}, ScratchFile("edge.log"));
  const auto log = ScratchFile("brain.log");
  Daemon brain("cogo-orchestrator-brain",
               {"--routing", SourcePath("config/routing.example.json"), "--policy",
                SourcePath("config/policy.example.json"), "--workflows",
                SourcePath("config/workflows"), "--poll-ms", "100"},
               log);
  const auto posted = HttpPost(edge->port(), kPath, Body("acme", "launch-rockets"), Auth(Token("acme")));
  ASSERT_EQ(posted.status, 202);
  const auto id = std::to_string(json::parse(posted.body)["id"].get<int64_t>());
  json view;
  ASSERT_TRUE(WaitFor([&] {
    view = json::parse(HttpGet(edge->port(), std::string(kPath) + "/" + id, Auth(Token("acme"))).body);
    return view["status"] == "failed";
  }, 30s)) << view.dump();
  EXPECT_EQ(view["error"].get<std::string>().rfind("orchestrator/decide: unknown_intent", 0), 0u) << view["error"];
  EXPECT_EQ(Scalar<int>("SELECT attempts FROM agent_messages WHERE id = " + id), 1);  // never retried
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions"), 0);
}

// The edge's log is what an operator reads: each refusal once, with its code, and never the
// credential refused (a token, an apikey) nor a string from the body. The edge runs in process
// so its logger writes to an in-memory sink.
TEST_F(EdgeTest, ARefusalIsLoggedOnceWithItsCodeAndNeverTheSecret) {
  auto sink = std::make_shared<LogSink>();
  const auto logger = MakeTestLogger("edge", sink);
  http::JsonServiceOptions options;
  options.database_url = DatabaseUrl();
  options.authenticate = edge::EdgeAuthenticator(kTestJwtSecret, kTestPublishableKey, {});
  http::JsonService service("cogo-edge", options, logger);
  service.Add(edge::EdgeRoutes(service, {}, logger));
  service.Start();

  const std::string forged = Token("acme", auth::Role::kAuthenticated, Now(), std::nullopt,
                                   "another-secret-0123456789abcdef");
  const std::string wrong_apikey = "pk_live_not-the-key-4242";
  const std::string body_secret = "sk-BODY-Secret!777";  // not a valid intent
  struct Case {
    const char* name;
    std::map<std::string, std::string> headers;
    std::string body;
    int status;
    const char* code;
  };
  const std::vector<Case> cases = {
      {"forged token", Auth(forged), Body(), 401, "bad_signature"},
      {"wrong apikey", {{"Authorization", "Bearer " + Token("acme")}, {"apikey", wrong_apikey}}, Body(), 401, "bad_apikey"},
      {"secret where the intent belongs", Auth(Token("acme")),
       json{{"tenant", "acme"}, {"intent", body_secret}}.dump(), 400, "invalid_field"},
      {"secret as an unknown key", Auth(Token("acme")),
       json{{"tenant", "acme"}, {"intent", "chat"}, {body_secret, 1}}.dump(), 400, "unknown_field"},
  };
  for (const auto& c : cases) {
    const auto r = HttpPost(service.port(), kPath, c.body, c.headers);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    EXPECT_EQ(json::parse(r.body)["error"], c.code) << c.name;
    EXPECT_EQ(r.body.find(body_secret), std::string::npos) << c.name << ": " << r.body;
    EXPECT_TRUE(WaitFor([&] { return sink->Count(c.code) == 1; }, 2s)) << c.name << ":\n" << sink->Text();
  }
  for (const auto& secret : {forged, wrong_apikey, body_secret, std::string(kTestJwtSecret),
                             std::string(kTestPublishableKey)}) {
    EXPECT_EQ(sink->Count(secret), 0u) << secret << " in:\n" << sink->Text();
  }
  EXPECT_EQ(Messages(), 0);
}

}  // namespace
}  // namespace cogo::testing
