// The indexing flow with the real brain, cogo-rag-embed, cogo-rag-dispatcher and cogo-kg-builder
// on a real PostgreSQL: a run started through the REST API ends succeeded with chunks, vectors and
// graph rows and a query finds them; tenants never see each other's; re-indexing the same content
// is a no-op and changed content replaces the chunks (in every dispatcher); a worker SIGKILLed
// mid-embed leaves no partial document; bad input fails by name and writes nothing.
#include <signal.h>

#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>

#include "cogo/auth/jwt.h"
#include "fake_openai.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::string kPostgresDoc =
    "PostgreSQL is a relational database. The Query Planner uses pg_statistic to estimate how many rows a "
    "scan returns.\n\n"
    "Write-Ahead Logging keeps data safe: every change is written to the WAL before the data files. "
    "Crash recovery replays the WAL from the last checkpoint.\n\n"
    "Autovacuum removes dead tuples so tables do not bloat; VACUUM also freezes old transaction ids.";

std::map<std::string, std::string> As(const std::string& role, const std::string& tenant = "") {
  return {{"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, role, tenant)}};
}

class RagTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    pqxx::nontransaction(*conn_).exec(
        "TRUNCATE rag_documents, rag_chunks, rag_chunk_deletions, kg_entities, kg_relations, kg_provenance "
        "RESTART IDENTITY CASCADE");
    ExportEdgeSecrets();
    log_ = ScratchFile("rag.log");
    // The daemons log in as worker roles (sql/010, sql/023): one login in the roles of the routes
    // these tests run (deployments give each daemon its own).
    pqxx::nontransaction admin(*conn_);
    admin.exec0("DROP ROLE IF EXISTS cogo_test_rag");
    admin.exec0("CREATE ROLE cogo_test_rag LOGIN IN ROLE cogo_brain, cogo_executor, cogo_rag_embed, "
                "cogo_rag_dispatcher, cogo_kg_builder");
  }
  void TearDown() override { pqxx::nontransaction(*conn_).exec0("DROP ROLE IF EXISTS cogo_test_rag"); }

  // The test database's URL as the worker user (the test cluster trusts local connections).
  static std::string WorkerUrl() {
    const auto& url = DatabaseUrl();
    const auto scheme = url.find("://") + 3;
    return url.substr(0, scheme) + "cogo_test_rag" + url.substr(url.find('@', scheme));
  }

  std::unique_ptr<Daemon> StartBrain() {
    return std::make_unique<Daemon>(
        "cogo-orchestrator-brain",
        std::vector<std::string>{"--routing", SourcePath("config/routing.example.json"), "--policy", Policy(),
                                 "--workflows", SourcePath("config/workflows"), "--poll-ms", "100",
                                 "--database-url", WorkerUrl()},
        log_);
  }
  std::unique_ptr<WorkerDaemon> StartWorker(const std::string& binary, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--policy", Policy(), "--poll-ms", "100", "--database-url", WorkerUrl()};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<WorkerDaemon>(binary, args, log_);
  }
  static std::string Policy() { return SourcePath("config/policy.example.json"); }

  // POST /api/workflows/execute for `tenant`; the run id.
  int64_t Index(int port, const std::string& tenant, const json& parameters) {
    const auto r = HttpPost(port, "/api/workflows/execute",
                            json{{"workflowId", "indexing"}, {"parameters", parameters}}.dump(),
                            As("authenticated", tenant));
    EXPECT_EQ(r.status, 202) << r.body;
    return r.status == 202 ? json::parse(r.body)["runId"].get<int64_t>() : 0;
  }
  static std::string Status(int64_t run) {
    return ScalarText("SELECT status FROM workflow_runs WHERE id = " + std::to_string(run));
  }
  bool Ends(int64_t run, const std::string& status, std::chrono::milliseconds timeout = 60s) {
    const bool ended = WaitFor([&] { return Status(run) == status; }, timeout);
    if (!ended) {
      ADD_FAILURE() << "run " << run << " is " << Status(run) << ", not " << status << " ("
                    << ScalarText("SELECT coalesce(reason, '') FROM workflow_runs WHERE id = " + std::to_string(run))
                    << "); its messages: "
                    << ScalarText("SELECT string_agg(service || '/' || role || ' ' || status || ' ' || "
                                  "coalesce(last_error, ''), '; ' ORDER BY id) FROM agent_messages WHERE correlation_id = 'wf:" +
                                  std::to_string(run) + "'")
                    << "; see " << log_;
    }
    return ended;
  }
  // The result document of the run's step `node`.
  static json StepOutput(int64_t run, const std::string& node) {
    return json::parse(ScalarText(
        "SELECT coalesce(m.result::text, 'null') FROM workflow_steps s JOIN agent_messages m ON m.id = s.message_id "
        "WHERE s.run_id = " + std::to_string(run) + " AND s.node = '" + node + "' ORDER BY s.activation DESC LIMIT 1"));
  }
  static json Query(int port, const std::map<std::string, std::string>& as, const json& body, int expect = 200) {
    const auto r = HttpPost(port, "/api/rag/query", body.dump(), as);
    EXPECT_EQ(r.status, expect) << r.body;
    return json::parse(r.body, nullptr, false);
  }
  static int64_t Count(const std::string& sql) { return Scalar<int64_t>(sql); }

  std::string log_;
};

TEST_F(RagTest, AnIndexingRunStoresChunksVectorsAndAGraphThatQueriesFind) {
  const auto brain = StartBrain();
  const auto embed = StartWorker("cogo-rag-embed", {"--chunk-max-chars", "200", "--chunk-overlap-chars", "40"});
  const auto dispatcher = StartWorker("cogo-rag-dispatcher");
  const auto builder = StartWorker("cogo-kg-builder");
  const int port = brain->port();
  const auto acme = As("authenticated", "acme");

  const int64_t run = Index(port, "acme", {{"doc_id", "pg-intro"}, {"title", "PostgreSQL in brief"},
                                           {"text", kPostgresDoc}, {"source", "test"}, {"metadata", {{"lang", "en"}}}});
  ASSERT_TRUE(Ends(run, "succeeded"));

  EXPECT_EQ(Count("SELECT count(*) FROM rag_documents WHERE tenant = 'acme' AND doc_id = 'pg-intro'"), 1);
  const int64_t chunks = Count("SELECT count(*) FROM rag_chunks WHERE tenant = 'acme'");
  EXPECT_GE(chunks, 3);
  EXPECT_EQ(Count("SELECT count(*) FROM rag_chunks WHERE dim = 384 AND octet_length(embedding) = 1536 "
                  "AND model = 'offline-embed'"), chunks);
  EXPECT_EQ(Count("SELECT chunk_count FROM rag_documents"), chunks);
  EXPECT_GT(Count("SELECT count(*) FROM kg_entities WHERE tenant = 'acme'"), 3);
  EXPECT_GT(Count("SELECT count(*) FROM kg_relations WHERE tenant = 'acme'"), 0);
  EXPECT_GT(Count("SELECT count(*) FROM kg_provenance WHERE tenant = 'acme'"), 0);
  const json embedded = StepOutput(run, "embed");
  EXPECT_EQ(embedded["status"], "indexed");
  EXPECT_EQ(embedded["chunks"], chunks);
  EXPECT_EQ(StepOutput(run, "build")["status"], "built");
  EXPECT_EQ(Count("SELECT count(*) FROM message_usage WHERE model = 'offline-embed'"), 1) << "metered";

  // The run's trail shows every step.
  const auto view = json::parse(HttpGet(port, "/api/workflows/runs/" + std::to_string(run), acme).body);
  std::vector<std::string> events;
  for (const auto& e : view["events"]) events.push_back(e["event"]);
  for (const char* want : {"workflow_started", "step_started", "step_done", "workflow_done"}) {
    EXPECT_NE(std::find(events.begin(), events.end(), want), events.end()) << want;
  }
  EXPECT_EQ(std::count(events.begin(), events.end(), "step_done"), 2) << "embed and build";

  // A query finds the chunk that says it, first.
  const json found = Query(port, acme, {{"query", "how does crash recovery replay the write-ahead log"}, {"k", 3}});
  ASSERT_FALSE(found["results"].empty()) << found.dump();
  EXPECT_EQ(found["results"][0]["doc_id"], "pg-intro");
  EXPECT_NE(found["results"][0]["text"].get<std::string>().find("Crash recovery"), std::string::npos) << found.dump();
  EXPECT_EQ(found["results"][0]["title"], "PostgreSQL in brief");
  EXPECT_LE(found["results"].size(), 3u);
  EXPECT_GE(found["results"][0]["score"].get<double>(), found["results"].back()["score"].get<double>());

  // The graph: an entity with its relations and the chunk that said it.
  const auto graph = HttpGet(port, "/api/kg/entities?name=postgresql", acme);
  ASSERT_EQ(graph.status, 200) << graph.body;
  const json entities = json::parse(graph.body)["entities"];
  ASSERT_FALSE(entities.empty()) << graph.body;
  EXPECT_EQ(entities[0]["name"], "PostgreSQL");
  EXPECT_FALSE(entities[0]["provenance"].empty());
  EXPECT_EQ(entities[0]["provenance"][0]["doc_id"], "pg-intro");
  bool is_a = false;
  for (const auto& r : entities[0]["relations"]) is_a |= r["type"] == "is_a";
  EXPECT_TRUE(is_a) << graph.body;
}

// What a user does at the edge: the `index` intent starts an indexing run, the `ask` intent is
// answered by a dispatcher through the executor.
TEST_F(RagTest, EdgeIntentsIndexADocumentAndAskOfIt) {
  const auto brain = StartBrain();
  Daemon edge("cogo-edge", {"--routing", SourcePath("config/routing.example.json"), "--database-url", WorkerUrl()}, log_);
  const auto executor = StartWorker("cogo-executor-dispatcher");
  const auto embed = StartWorker("cogo-rag-embed");
  const auto dispatcher = StartWorker("cogo-rag-dispatcher");
  const auto builder = StartWorker("cogo-kg-builder");
  const std::map<std::string, std::string> user = {
      {"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, "authenticated", "acme")},
      {"apikey", kTestPublishableKey}};
  constexpr const char* kIngress = "/functions/v1/orchestrator-chat";
  const auto send = [&](const json& body) {
    const auto r = HttpPost(edge.port(), kIngress, body.dump(), user);
    EXPECT_EQ(r.status, 202) << r.body;
    const std::string id = std::to_string(json::parse(r.body)["id"].get<int64_t>());
    json view;
    EXPECT_TRUE(WaitFor([&] {
      view = json::parse(HttpGet(edge.port(), std::string(kIngress) + "/" + id, user).body);
      return view["status"] == "done" || view["status"] == "failed";
    }, 60s)) << view.dump() << "; see " << log_;
    return view;
  };

  const json indexed = send({{"tenant", "acme"}, {"intent", "index"},
                             {"payload", {{"doc_id", "pg-intro"}, {"title", "PostgreSQL"}, {"text", kPostgresDoc}}}});
  EXPECT_EQ(indexed["status"], "done") << indexed.dump();
  EXPECT_EQ(indexed["workflow"]["status"], "succeeded") << indexed.dump();
  EXPECT_GE(Count("SELECT count(*) FROM rag_chunks WHERE tenant = 'acme'"), 1);
  EXPECT_GT(Count("SELECT count(*) FROM kg_provenance WHERE tenant = 'acme'"), 0);

  const json asked = send({{"tenant", "acme"}, {"intent", "ask"},
                           {"payload", {{"query", "autovacuum removes dead tuples"}, {"k", 2}}}});
  ASSERT_EQ(asked["status"], "done") << asked.dump();
  const json results = asked["result"]["results"];
  ASSERT_FALSE(results.empty()) << asked.dump();
  EXPECT_EQ(results[0]["doc_id"], "pg-intro");
  EXPECT_NE(results[0]["text"].get<std::string>().find("Autovacuum"), std::string::npos) << asked.dump();
}

TEST_F(RagTest, TenantsNeverSeeEachOthersDocumentsOrGraph) {
  const auto brain = StartBrain();
  const auto embed = StartWorker("cogo-rag-embed");
  const auto dispatcher = StartWorker("cogo-rag-dispatcher");
  const auto builder = StartWorker("cogo-kg-builder");
  const int port = brain->port();
  const auto acme = As("authenticated", "acme");
  const auto globex = As("authenticated", "globex");
  const auto service = As("service_role");

  const int64_t a = Index(port, "acme", {{"doc_id", "secret"}, {"title", "Acme Plans"},
                                         {"text", "Project Falcon launches the Orbital Widget in March."}});
  // The same doc_id in another tenant is another document.
  const int64_t g = Index(port, "globex", {{"doc_id", "secret"}, {"title", "Globex Notes"},
                                           {"text", "Cafeteria menus rotate weekly."}});
  ASSERT_TRUE(Ends(a, "succeeded"));
  ASSERT_TRUE(Ends(g, "succeeded"));
  EXPECT_EQ(Count("SELECT count(*) FROM rag_documents"), 2);

  for (const auto& [who, headers, body] :
       std::vector<std::tuple<std::string, std::map<std::string, std::string>, json>>{
           {"globex token", globex, {{"query", "Project Falcon Orbital Widget launch"}}},
           {"service naming globex", service, {{"tenant", "globex"}, {"query", "Project Falcon Orbital Widget"}}}}) {
    const json r = Query(port, headers, body);
    for (const auto& hit : r["results"]) {
      EXPECT_EQ(hit["text"].get<std::string>().find("Falcon"), std::string::npos) << who << ": " << r.dump();
    }
  }
  const json own = Query(port, acme, {{"query", "Project Falcon"}});
  ASSERT_FALSE(own["results"].empty());
  EXPECT_NE(own["results"][0]["text"].get<std::string>().find("Falcon"), std::string::npos);
  EXPECT_EQ(Query(port, service, {{"tenant", "acme"}, {"query", "Project Falcon"}})["results"].size(), own["results"].size());

  // Acting for another tenant is refused; a service token must name one.
  Query(port, acme, {{"tenant", "globex"}, {"query", "x"}}, 403);
  EXPECT_EQ(Query(port, service, {{"query", "x"}}, 400)["error"], "missing_key");

  const auto entities = [&](const std::map<std::string, std::string>& as, const std::string& query) {
    const auto r = HttpGet(port, "/api/kg/entities?name=falcon" + query, as);
    return std::make_pair(r.status, json::parse(r.body, nullptr, false));
  };
  EXPECT_FALSE(entities(acme, "").second["entities"].empty());
  EXPECT_TRUE(entities(globex, "").second["entities"].empty());
  EXPECT_TRUE(entities(service, "&tenant=globex").second["entities"].empty());
  EXPECT_EQ(entities(globex, "&tenant=acme").first, 403);
  EXPECT_EQ(entities(service, "").first, 400);
  EXPECT_EQ(HttpGet(port, "/api/kg/entities?name=falcon").status, 401);
  EXPECT_EQ(HttpPost(port, "/api/rag/query", R"({"query":"x"})").status, 401);
}

TEST_F(RagTest, ReindexingTheSameContentIsANoOpAndChangedContentReplacesItEverywhere) {
  const auto brain = StartBrain();
  const auto embed = StartWorker("cogo-rag-embed");
  const auto builder = StartWorker("cogo-kg-builder");
  // Two dispatchers, each with its own index: both must forget the replaced chunks.
  const std::vector<std::string> args{"--policy", Policy(), "--poll-ms", "100", "--search", "hnsw",
                                      "--database-url", WorkerUrl()};
  ChildProcess d1("cogo-rag-dispatcher", args, log_);
  ChildProcess d2("cogo-rag-dispatcher", args, log_);
  const int port = brain->port();
  const auto acme = As("authenticated", "acme");
  const json first = {{"doc_id", "notes"}, {"title", "Notes"}, {"text", "Zebras graze on the savanna at dawn."}};

  ASSERT_TRUE(Ends(Index(port, "acme", first), "succeeded"));
  ASSERT_FALSE(Query(port, acme, {{"query", "zebras savanna"}})["results"].empty());
  const std::string chunk_ids = ScalarText("SELECT string_agg(id::text, ',' ORDER BY id) FROM rag_chunks");

  const int64_t again = Index(port, "acme", first);
  ASSERT_TRUE(Ends(again, "succeeded"));
  EXPECT_EQ(StepOutput(again, "embed")["status"], "unchanged");
  EXPECT_EQ(StepOutput(again, "build")["status"], "unchanged");
  EXPECT_EQ(ScalarText("SELECT string_agg(id::text, ',' ORDER BY id) FROM rag_chunks"), chunk_ids);
  EXPECT_EQ(Count("SELECT count(*) FROM rag_chunk_deletions"), 0);

  json changed = first;
  changed["text"] = "Penguins huddle together through the antarctic winter.";
  const int64_t replaced = Index(port, "acme", changed);
  ASSERT_TRUE(Ends(replaced, "succeeded"));
  EXPECT_EQ(StepOutput(replaced, "embed")["status"], "replaced");
  EXPECT_EQ(Count("SELECT count(*) FROM rag_documents"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM rag_chunks WHERE id IN (" + chunk_ids + ")"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM rag_chunks WHERE text LIKE 'Penguins%'"), 1);
  EXPECT_GT(Count("SELECT count(*) FROM rag_chunk_deletions"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM kg_provenance p JOIN rag_chunks c ON c.id = p.chunk_id "
                  "WHERE c.text LIKE 'Zebras%'"), 0);

  // Each dispatcher in turn (the other stopped): never the old text, always the new.
  for (auto [serving, paused] : {std::pair{&d1, &d2}, std::pair{&d2, &d1}}) {
    paused->Signal(SIGSTOP);
    serving->Signal(SIGCONT);
    for (int i = 0; i < 3; ++i) {
      const json old_words = Query(port, acme, {{"query", "zebras graze savanna dawn"}, {"k", 5}});
      for (const auto& hit : old_words["results"]) {
        EXPECT_EQ(hit["text"].get<std::string>().find("Zebras"), std::string::npos);
      }
      const json new_words = Query(port, acme, {{"query", "penguins antarctic winter"}});
      ASSERT_FALSE(new_words["results"].empty());
      EXPECT_NE(new_words["results"][0]["text"].get<std::string>().find("Penguins"), std::string::npos);
    }
  }
  d1.Signal(SIGCONT);
  EXPECT_EQ(Count("SELECT count(DISTINCT e.detail->>'owner') FROM bus_events e JOIN agent_messages m ON m.id = e.message_id "
                  "WHERE m.service = 'rag' AND m.role = 'query' AND e.detail ? 'owner'"), 2)
      << "both dispatchers answered";
  d1.Signal(SIGTERM);
  d2.Signal(SIGTERM);
  EXPECT_TRUE(d1.Wait(10s).has_value());
  EXPECT_TRUE(d2.Wait(10s).has_value());
}

TEST_F(RagTest, AnEmbedWorkerKilledMidEmbedLeavesNothingAndTheRetryWritesOnce) {
  // A slow embeddings server holds the first request until the worker is dead.
  FakeOpenAI server;
  std::atomic<int> calls{0};
  server.Play([&](int, const httplib::Request& request, httplib::Response& response) {
    if (calls.fetch_add(1) == 0) server.Hold(30s);
    json data = json::array();
    const auto inputs = json::parse(request.body)["input"];
    for (size_t i = 0; i < inputs.size(); ++i) {
      data.push_back({{"index", i}, {"embedding", {1.0, static_cast<double>(i), 0.5, 0.25}}});
    }
    ReplyJson(response, {{"data", data}, {"usage", {{"prompt_tokens", 10}}}});
  });
  const auto brain = StartBrain();
  const auto builder = StartWorker("cogo-kg-builder");
  WorkerDaemon reclaimer("cogo-bus-reclaimer", {"--interval", "200ms"}, log_);
  const std::vector<std::string> remote = {"--provider-base-url", server.base_url(), "--lease-ms", "1500",
                                           "--heartbeat-ms", "300", "--embed-batch-size", "2",
                                           "--chunk-max-chars", "120", "--chunk-overlap-chars", "20"};
  std::vector<std::string> args{"--policy", Policy(), "--poll-ms", "100", "--database-url", WorkerUrl()};
  args.insert(args.end(), remote.begin(), remote.end());
  auto embed = std::make_unique<ChildProcess>("cogo-rag-embed", args, log_);

  const int64_t run = Index(brain->port(), "acme", {{"doc_id", "long"}, {"title", "Long"}, {"text", kPostgresDoc}});
  ASSERT_TRUE(WaitFor([&] { return calls.load() >= 1; })) << "see " << log_;
  embed->Signal(SIGKILL);
  ASSERT_TRUE(embed->Wait(5s).has_value());
  server.Release();
  EXPECT_EQ(Count("SELECT count(*) FROM rag_documents"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM rag_chunks"), 0);

  embed = std::make_unique<ChildProcess>("cogo-rag-embed", args, log_);
  ASSERT_TRUE(Ends(run, "succeeded"));
  EXPECT_EQ(Count("SELECT count(*) FROM rag_documents"), 1);
  const int64_t chunks = Count("SELECT count(*) FROM rag_chunks");
  EXPECT_GE(chunks, 3);
  EXPECT_EQ(Count("SELECT count(DISTINCT ord) FROM rag_chunks"), chunks);
  EXPECT_EQ(Count("SELECT max(ord) + 1 FROM rag_chunks"), chunks);
  EXPECT_EQ(Count("SELECT chunk_count FROM rag_documents"), chunks);
  EXPECT_EQ(Count("SELECT count(*) FROM rag_chunks WHERE dim = 4"), chunks);
  EXPECT_EQ(Count("SELECT attempts FROM agent_messages WHERE service = 'rag' AND role = 'embed'"), 2);
  embed->Signal(SIGTERM);
  (void)embed->Wait(10s);
}

// The chat extractor against a local server speaking the OpenAI wire format: a malformed reply
// is asked again; a model that never answers in the schema fails the message by name.
TEST_F(RagTest, TheChatExtractorAsksAgainAfterAMalformedReplyThenFailsByName) {
  FakeOpenAI server;
  std::atomic<bool> always_malformed{false};
  server.Play([&](int n, const httplib::Request&, httplib::Response& response) {
    const bool good = !always_malformed && n % 2 == 1;
    const std::string content =
        good ? R"({"entities":[{"name":"Ada Lovelace","type":"person"},{"name":"Analytical Engine","type":"machine"}],)"
               R"("relations":[{"source":"Ada Lovelace","target":"Analytical Engine","type":"programmed"}]})"
             : "Sure! Ada Lovelace programmed the Analytical Engine.";
    ReplyJson(response, {{"model", "gpt-4o-mini"},
                         {"choices", {{{"index", 0}, {"finish_reason", "stop"},
                                       {"message", {{"role", "assistant"}, {"content", content}}}}}},
                         {"usage", {{"prompt_tokens", 100}, {"completion_tokens", 40}}}});
  });
  const auto embed = StartWorker("cogo-rag-embed");
  const auto builder = StartWorker("cogo-kg-builder", {"--provider-base-url", server.base_url()});
  const auto assignment = [](const std::string& model) {
    return json{{"agent_id", "t"}, {"version", "v1"}, {"model", model},
                {"budget", {{"maxCostUsd", 1.0}, {"maxTokens", 100000}}}, {"ttl_ms", 60000}};
  };
  const auto publish = [&](const std::string& role, json payload) {
    payload["__assignment"] = assignment(role == "embed" ? "offline-embed" : "gpt-4o-mini");
    auto message = Message(payload.dump(), role == "embed" ? "rag" : "kg", role);
    message.max_attempts = 1;
    return std::to_string(bus_->Publish(message).id);
  };
  const auto final_status = [&](const std::string& id) {
    std::string status;
    EXPECT_TRUE(WaitFor([&] {
      status = ScalarText("SELECT status FROM agent_messages WHERE id = " + id);
      return status != "queued" && status != "running";
    })) << "see " << log_;
    return status;
  };
  for (const char* doc : {"ada", "babbage"}) {
    const auto id = publish("embed", {{"doc_id", doc}, {"title", doc}, {"text", "Ada Lovelace wrote programs."}});
    ASSERT_EQ(final_status(id), "done");
  }

  const auto built = publish("build", {{"doc_id", "ada"}});
  ASSERT_EQ(final_status(built), "done") << ScalarText("SELECT last_error FROM agent_messages WHERE id = " + built);
  EXPECT_EQ(server.seen().size(), 2u) << "one malformed reply, asked once more";
  EXPECT_EQ(Count("SELECT count(*) FROM kg_entities WHERE tenant = 'tenant-a' AND type IN ('person', 'machine')"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM kg_relations WHERE type = 'programmed'"), 1);
  EXPECT_EQ(Count("SELECT input_tokens + output_tokens FROM message_usage WHERE message_id = " + built), 280)
      << "both replies metered";

  always_malformed = true;
  const auto failed = publish("build", {{"doc_id", "babbage"}});
  ASSERT_EQ(final_status(failed), "failed");
  EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " + failed),
            "extraction_malformed");
  EXPECT_EQ(Count("SELECT count(*) FROM kg_provenance p JOIN rag_chunks c ON c.id = p.chunk_id WHERE c.doc_id = 'babbage'"), 0);
}

TEST_F(RagTest, BadInputFailsByNameAndWritesNothing) {
  const auto brain = StartBrain();
  const auto embed = StartWorker("cogo-rag-embed");
  const auto dispatcher = StartWorker("cogo-rag-dispatcher");
  const int port = brain->port();
  const auto acme = As("authenticated", "acme");

  // Refused by the API before anything is written.
  struct Refusal {
    const char* what;
    std::string body;
    int status;
    std::string error;
  };
  const std::vector<Refusal> refusals = {
      {"oversize text", json{{"workflowId", "indexing"}, {"parameters", {{"doc_id", "d"}, {"title", "t"},
                                                                         {"text", std::string(524289, 'a')}}}}.dump(),
       400, "out_of_range"},
      {"text of the wrong type", R"({"workflowId":"indexing","parameters":{"doc_id":"d","title":"t","text":5}})", 400,
       "wrong_type"},
      {"non-UTF-8 text", "{\"workflowId\":\"indexing\",\"parameters\":{\"doc_id\":\"d\",\"title\":\"t\",\"text\":\"\xff\xfe\"}}",
       400, "malformed_json"},
  };
  for (const auto& r : refusals) {
    const auto answer = HttpPost(port, "/api/workflows/execute", r.body, acme);
    EXPECT_EQ(answer.status, r.status) << r.what << ": " << answer.body;
    EXPECT_EQ(json::parse(answer.body, nullptr, false)["error"], r.error) << r.what;
  }
  EXPECT_EQ(Count("SELECT count(*) FROM workflow_runs"), 0);

  // Past the API: an empty text fails the run at its embed step, by name.
  const int64_t empty = Index(port, "acme", {{"doc_id", "d"}, {"title", "t"}, {"text", "   "}});
  ASSERT_TRUE(Ends(empty, "failed"));
  EXPECT_EQ(ScalarText("SELECT reason FROM workflow_runs WHERE id = " + std::to_string(empty)), "indexing_failed");
  EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE service = 'rag' AND role = 'embed'"),
            "empty_text");

  // Messages published on the bus directly meet the worker's own checks.
  const std::string assignment =
      R"("__assignment":{"agent_id":"rag-embed","version":"v1","model":"offline-embed","budget":{"maxCostUsd":1,"maxTokens":1000000},"ttl_ms":60000})";
  const std::vector<std::pair<std::string, std::string>> direct = {
      {"{\"doc_id\":\"big\",\"text\":\"" + std::string(600000, 'b') + "\"," + assignment + "}", "document_too_large"},
      {"{\"doc_id\":\"typed\",\"text\":[1]," + assignment + "}", "invalid_input"},
      {"{\"doc_id\":\"blank\",\"text\":\"\"," + assignment + "}", "empty_text"},
      {"{\"doc_id\":\"extra\",\"text\":\"x\",\"colour\":1," + assignment + "}", "invalid_input"},
  };
  std::vector<int64_t> ids;
  for (const auto& [payload, reason] : direct) {
    auto message = Message(payload, "rag", "embed");
    message.max_attempts = 3;
    ids.push_back(bus_->Publish(message).id);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string id = std::to_string(ids[i]);
    ASSERT_TRUE(WaitFor([&] { return ScalarText("SELECT status FROM agent_messages WHERE id = " + id) == "failed"; }))
        << direct[i].second << "; see " << log_;
    EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " + id), direct[i].second);
    EXPECT_EQ(Count("SELECT attempts FROM agent_messages WHERE id = " + id), 1) << "permanent: not retried";
  }
  EXPECT_EQ(Count("SELECT count(*) FROM rag_documents"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM rag_chunks"), 0);

  // Queries out of range are 400s with a reason.
  struct BadQuery {
    json body;
    std::string error;
  };
  for (const auto& q : std::vector<BadQuery>{{{{"query", "x"}, {"k", 0}}, "invalid_field"},
                                             {{{"query", "x"}, {"k", 51}}, "invalid_field"},
                                             {{{"query", "x"}, {"k", "3"}}, "wrong_type"},
                                             {{{"query", ""}}, "invalid_field"},
                                             {{{"query", "   "}}, "invalid_field"},
                                             {{{"query", std::string(5000, 'q')}}, "invalid_field"},
                                             {{{"k", 3}}, "missing_field"},
                                             {{{"query", "x"}, {"colour", 1}}, "unknown_field"}}) {
    const json r = Query(port, acme, q.body, 400);
    EXPECT_EQ(r["error"], q.error) << q.body.dump();
  }
}

}  // namespace
}  // namespace cogo::testing
