// Least privilege (sql/010_roles.sql, sql/023_route_roles.sql): the README stack runs with each
// daemon logged in as a user of its own role, each role is refused what it must not do, a worker
// claims and finishes only messages of its own routes, and every role's name is configurable.
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "cogo/auth/jwt.h"
#include "cogo/bus/bus.h"
#include "child_process.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class RolesTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ExportEdgeSecrets();
    pqxx::nontransaction admin(*conn_);
    for (const auto& [user, role] : kUsers) {
      admin.exec0("DROP ROLE IF EXISTS " + std::string(user));
      admin.exec0("CREATE ROLE " + std::string(user) + " LOGIN IN ROLE " + role);
    }
  }
  void TearDown() override {
    pqxx::nontransaction admin(*conn_);
    for (const auto& [user, role] : kUsers) admin.exec0("DROP ROLE IF EXISTS " + std::string(user));
  }

  // Whether `sql` run as `user` is refused for want of a privilege (and nothing else).
  static bool Refused(const std::string& user, const std::string& sql) {
    pqxx::connection conn(UrlAs(user));
    pqxx::work txn(conn);
    try {
      (void)txn.exec(sql);
    } catch (const pqxx::insufficient_privilege&) {
      return true;
    }
    return false;  // rolled back: the statement was allowed
  }

  // Whether the message is still queued and never attempted.
  static bool Untouched(int64_t id) {
    return ScalarText("SELECT status || ' ' || attempts FROM agent_messages WHERE id = " + std::to_string(id)) ==
           "queued 0";
  }

  static constexpr std::pair<const char*, const char*> kUsers[] = {
      {"cogo_test_edge", "cogo_edge"},
      {"cogo_test_worker", "cogo_worker"},  // the worker group alone: no route of its own
      {"cogo_test_ops", "cogo_ops"},
      {"cogo_test_reader", "cogo_reader"},
      {"cogo_test_brain", "cogo_brain"},
      {"cogo_test_executor", "cogo_executor"},
      {"cogo_test_chat", "cogo_gateway_chat"},
      {"cogo_test_embed", "cogo_rag_embed"},
      {"cogo_test_dispatcher", "cogo_rag_dispatcher"},
      {"cogo_test_kg", "cogo_kg_builder"},
  };
};

TEST_F(RolesTest, TheStackRunsWithEachDaemonInItsRole) {
  const auto log = ScratchFile("roles.log");
  const auto routing = SourcePath("config/routing.example.json");
  const auto policy = SourcePath("config/policy.example.json");
  const auto worker = [&](const char* binary, const char* user) {
    return std::make_unique<WorkerDaemon>(
        binary, std::vector<std::string>{"--policy", policy, "--poll-ms", "100", "--database-url", UrlAs(user)}, log);
  };
  Daemon edge("cogo-edge", {"--routing", routing, "--database-url", UrlAs("cogo_test_edge")}, log);
  Daemon brain("cogo-orchestrator-brain",
               {"--routing", routing, "--policy", policy, "--workflows", SourcePath("config/workflows"), "--poll-ms",
                "100", "--database-url", UrlAs("cogo_test_brain")},
               log);
  const auto executor = worker("cogo-executor-dispatcher", "cogo_test_executor");
  const auto chat = worker("cogo-gateway-chat", "cogo_test_chat");
  const auto embed = worker("cogo-rag-embed", "cogo_test_embed");
  const auto dispatcher = worker("cogo-rag-dispatcher", "cogo_test_dispatcher");
  const auto builder = worker("cogo-kg-builder", "cogo_test_kg");

  const std::map<std::string, std::string> headers = {
      {"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, "authenticated", "acme")},
      {"apikey", kTestPublishableKey}};
  constexpr const char* kIngress = "/functions/v1/orchestrator-chat";
  const auto send = [&](const json& body) {
    const auto accepted = HttpPost(edge.port(), kIngress, body.dump(), headers);
    EXPECT_EQ(accepted.status, 202) << accepted.body << " see " << log;
    const auto id = json::parse(accepted.body)["id"].get<int64_t>();
    json view;
    EXPECT_TRUE(WaitFor([&] {
      view = json::parse(HttpGet(edge.port(), std::string(kIngress) + "/" + std::to_string(id), headers).body);
      return view["status"] == "done" || view["status"] == "failed";
    }, 60s)) << view.dump() << " see " << log;
    return view;
  };
  // A chat (brain -> executor -> gateway/chat), an indexing run (the workflow engine, rag/embed,
  // kg/build) and a question (executor -> rag/query): every worker route, each in its own role.
  const json chatted = send({{"tenant", "acme"}, {"intent", "chat"}, {"payload", {{"message", "hi"}}}});
  EXPECT_EQ(chatted["status"], "done") << chatted.dump() << " see " << log;
  const json indexed = send({{"tenant", "acme"}, {"intent", "index"},
                             {"payload", {{"doc_id", "roles"}, {"title", "Roles"},
                                          {"text", "Each cogo daemon logs in as its own database role."}}}});
  EXPECT_EQ(indexed["status"], "done") << indexed.dump() << " see " << log;
  EXPECT_EQ(indexed["workflow"]["status"], "succeeded") << indexed.dump();
  const json asked = send({{"tenant", "acme"}, {"intent", "ask"}, {"payload", {{"query", "database role"}, {"k", 1}}}});
  ASSERT_EQ(asked["status"], "done") << asked.dump() << " see " << log;
  EXPECT_EQ(asked["result"]["results"][0]["doc_id"], "roles") << asked.dump();
  // The operator prunes as cogo_ops; a reader inspects.
  pqxx::nontransaction(*conn_).exec0("UPDATE agent_messages SET finished_at = now() - interval '30 days'");
  const auto pruned = RunCommand("cogo", {"prune", "--database-url", UrlAs("cogo_test_ops"), "--finished-max-age", "1d"});
  EXPECT_EQ(pruned.status, 0) << pruned.output;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 0);
  const auto status = RunCommand("cogo", {"status", "--database-url", UrlAs("cogo_test_reader")});
  EXPECT_EQ(status.status, 0) << status.output;
}

TEST_F(RolesTest, EachRoleIsRefusedWhatItMustNotDo) {
  const auto queued = bus_->Publish(Message()).id;
  const std::string row = std::to_string(queued);
  struct Case {
    const char* user;
    std::string sql;
    bool refused;
  };
  const std::vector<Case> cases = {
      {"cogo_test_edge", "INSERT INTO agent_messages (service, role, tenant, payload) VALUES ('orchestrator', 'decide', 't', '{}')", false},
      {"cogo_test_edge", "INSERT INTO agent_messages (service, role, tenant, payload) VALUES ('chat', 'respond', 't', '{}')", true},
      {"cogo_test_edge", "SELECT count(*) FROM bus_events", false},
      {"cogo_test_edge", "UPDATE agent_messages SET status = 'done' WHERE id = " + row, true},
      {"cogo_test_edge", "DELETE FROM agent_messages WHERE id = " + row, true},
      {"cogo_test_chat", "UPDATE agent_messages SET priority = 1 WHERE id = " + row, false},
      {"cogo_test_worker", "DELETE FROM agent_messages WHERE id = " + row, true},
      {"cogo_test_worker", "DELETE FROM bus_events", true},
      {"cogo_test_worker", "TRUNCATE agent_messages", true},
      {"cogo_test_worker", "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'x', 'y')", true},
      {"cogo_test_ops", "DELETE FROM agent_messages WHERE id = " + row, false},
      {"cogo_test_ops", "DROP TABLE agent_messages", true},
      {"cogo_test_ops", "ALTER TABLE agent_messages ADD COLUMN x int", true},
      {"cogo_test_ops", "CREATE TABLE mine (x int)", true},
      {"cogo_test_reader", "SELECT count(*) FROM agent_messages", false},
      {"cogo_test_reader", "INSERT INTO bus_events (message_id, event, service, role, tenant) VALUES (1, 'e', 'a', 'b', 't')", true},
      {"cogo_test_reader", "UPDATE workflow_runs SET status = 'failed'", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Refused(c.user, c.sql), c.refused) << c.user << ": " << c.sql;
  }
}

// sql/023: the chat worker's login can take and finish gateway/chat messages and nothing else:
// another route's claim finds nothing, its complete, fail, release, heartbeat and cancel change
// nothing, and it cannot move a message to another route or give itself one. Publishing to any
// route stays open (the executor's hand-off); the brain may cancel anywhere but finish nothing.
TEST_F(RolesTest, AWorkerClaimsAndFinishesOnlyMessagesOfItsOwnRoutes) {
  const auto chat_id = bus_->Publish(Message("{}", "gateway", "chat")).id;
  const auto execute_id = bus_->Publish(Message("{}", "orchestrator", "execute")).id;
  pqxx::connection chat_conn(UrlAs("cogo_test_chat"));
  pqxx::connection executor_conn(UrlAs("cogo_test_executor"));
  pqxx::connection brain_conn(UrlAs("cogo_test_brain"));
  pqxx::connection group_conn(UrlAs("cogo_test_worker"));
  bus::Bus chat(chat_conn), executor(executor_conn), brain(brain_conn), group(group_conn);

  EXPECT_TRUE(chat.Claim({"chat-1", "orchestrator", "execute"}).empty());
  EXPECT_TRUE(group.Claim({"group-1", "gateway", "chat"}).empty());
  EXPECT_TRUE(Untouched(execute_id));
  EXPECT_TRUE(Untouched(chat_id));
  const auto own = chat.Claim({"chat-1", "gateway", "chat"});
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].lease.message_id, chat_id);

  const auto taken = executor.Claim({"executor-1", "orchestrator", "execute"});
  ASSERT_EQ(taken.size(), 1u);
  const auto lease = taken[0].lease;  // the executor's real lease, known to the thief
  EXPECT_FALSE(chat.Complete({lease, R"({"stolen":true})", "", ""}));
  EXPECT_EQ(chat.Fail({lease, "stolen", bus::FailureKind::permanent, 0}), bus::FailOutcome::lease_lost);
  EXPECT_FALSE(chat.Release(lease));
  EXPECT_EQ(chat.Heartbeat({lease}, 60000), std::vector<bool>{false});
  EXPECT_FALSE(chat.Cancel(execute_id, "stolen"));
  EXPECT_EQ(ScalarText("SELECT status || ' ' || lease_owner FROM agent_messages WHERE id = " +
                       std::to_string(execute_id)),
            "running executor-1");
  EXPECT_TRUE(executor.Complete({lease, "{}", "", ""}));
  EXPECT_TRUE(chat.Complete({own[0].lease, "{}", "", ""}));

  // Moving a message of its own onto another route, or granting itself one, is refused outright.
  const auto next_chat = bus_->Publish(Message("{}", "gateway", "chat")).id;
  EXPECT_TRUE(Refused("cogo_test_chat", "UPDATE agent_messages SET service = 'orchestrator', role = 'execute' WHERE id = " +
                                            std::to_string(next_chat)));
  EXPECT_TRUE(Refused("cogo_test_chat", "UPDATE cogo_db_roles SET routes = routes || 'orchestrator/execute'::text"));
  EXPECT_TRUE(Refused("cogo_test_chat", "INSERT INTO cogo_db_roles (kind, name, routes, login, purpose) "
                                        "VALUES ('mine', 'cogo_test_chat', '{orchestrator/execute}', false, 'x')"));
  EXPECT_TRUE(Refused("cogo_test_ops", "DELETE FROM cogo_db_roles"));

  // The executor hands off to any route; the group-only login may publish too.
  EXPECT_TRUE(executor.Publish(Message("{}", "kg", "build")).created);
  EXPECT_TRUE(group.Publish(Message("{}", "rag", "embed")).created);

  // The brain cancels another route's live message (a cancelled run's step) but cannot take one.
  const auto query_id = bus_->Publish(Message("{}", "rag", "query")).id;
  EXPECT_THROW((void)brain.Claim({"brain-1", "rag", "query"}), pqxx::insufficient_privilege);
  EXPECT_TRUE(Untouched(query_id));
  EXPECT_TRUE(brain.Cancel(next_chat, "workflow_cancelled: test"));
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(next_chat)), "cancelled");

  // What a worker may ask before it starts polling.
  const auto may_work = [](const char* user, const char* service, const char* role) {
    pqxx::connection conn(UrlAs(user));
    pqxx::nontransaction txn(conn);
    return txn.exec_params1("SELECT cogo_may_work($1, $2)", service, role)[0].as<bool>();
  };
  EXPECT_TRUE(may_work("cogo_test_chat", "gateway", "chat"));
  EXPECT_FALSE(may_work("cogo_test_chat", "orchestrator", "execute"));
  EXPECT_TRUE(may_work("cogo_test_brain", "orchestrator", "workflow"));
  EXPECT_FALSE(may_work("cogo_test_brain", "rag", "query"));
  EXPECT_FALSE(may_work("cogo_test_worker", "gateway", "chat"));
  EXPECT_TRUE(may_work("cogo_test_ops", "gateway", "chat"));
  EXPECT_FALSE(may_work("cogo_test_edge", "orchestrator", "decide"));
  EXPECT_FALSE(may_work("cogo_test_reader", "gateway", "chat"));
}

// The same through a real worker daemon: cogo-test-worker logged in as the chat worker but
// pointed at the executor's route stops at once with the reason (exit 1) instead of polling for
// nothing; the message waits, unattempted, until a worker of that route takes it.
TEST_F(RolesTest, AWorkerDaemonOfAnotherRoleCannotTakeARoutesMessages) {
  const auto log = ScratchFile("roles-daemon.log");
  const auto id = bus_->Publish(Message("{}", "orchestrator", "execute")).id;
  {
    ChildProcess thief("cogo-test-worker", {"--service", "orchestrator", "--role", "execute", "--poll-ms", "50",
                                            "--database-url", UrlAs("cogo_test_chat")},
                       log);
    EXPECT_EQ(thief.Wait(20s), 1) << "see " << log;
  }
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("database role cogo_test_chat may not work orchestrator/execute"), std::string::npos) << text;
  EXPECT_TRUE(Untouched(id));
  WorkerDaemon owner("cogo-test-worker", {"--service", "orchestrator", "--role", "execute", "--poll-ms", "50",
                                          "--database-url", UrlAs("cogo_test_executor")},
                     log);
  EXPECT_TRUE(WaitFor([&] { return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id)) == "done"; },
                      30s))
      << "see " << log;
}

// Row-level security (sql/017): a session scoped to a tenant, as http::JsonService::Read scopes
// a tenant token's reads, sees that tenant's rows only, whatever its query asks for, from every
// daemon role; unscoped daemon sessions see every tenant's rows as before.
TEST_F(RolesTest, ATenantScopedSessionSeesOnlyItsTenantsRows) {
  for (const char* tenant : {"acme", "acme", "globex"}) {
    auto message = Message();
    message.tenant = tenant;
    (void)bus_->Publish(message);
  }
  {
    pqxx::work admin(*conn_);
    admin.exec0("INSERT INTO bus_events (message_id, event, service, role, tenant) "
                "VALUES (1, 'completed', 'test', 'echo', 'acme'), (2, 'completed', 'test', 'echo', 'globex')");
    admin.exec0("INSERT INTO tenant_spend (tenant, day) VALUES ('acme', current_date), ('globex', current_date)");
    // The fixture empties the bus's tables; the documents' and the graph's are emptied here.
    admin.exec0("TRUNCATE rag_documents, rag_chunks, rag_chunk_deletions, kg_entities, kg_relations, kg_provenance");
    admin.exec0("INSERT INTO workflow_definitions (workflow_id, version, digest, definition) "
                "VALUES ('rls', 1, 'rls-digest', '{}')");
    for (const char* tenant : {"acme", "globex", "globex"}) {
      const auto run = admin.exec_params1("INSERT INTO workflow_runs (tenant, workflow_id, version, parameters) "
                                          "VALUES ($1, 'rls', 1, '{}') RETURNING id", tenant)[0].as<int64_t>();
      admin.exec_params0("INSERT INTO workflow_steps (run_id, node, activation, node_type, status) "
                         "VALUES ($1, 'a', 1, 'publish', 'running')", run);
      admin.exec_params0("INSERT INTO workflow_signals (run_id, name, data) VALUES ($1, 'go', '{}')", run);
      // Usage (and the spend change its trigger writes), a decision and its feedback, a document
      // with a chunk, a deleted chunk, and the graph built from it: one of each per run's tenant.
      admin.exec_params0("INSERT INTO message_usage (message_id, attempt, tenant, service, role, cost_usd, outcome) "
                         "VALUES ($1, 1, $2, 'test', 'echo', 0.01, 'completed')", run, tenant);
      const auto decision = admin.exec_params1(
          "INSERT INTO decisions (message_id, tenant, intent, matched_by, rule_intent, target, agent_id, model, "
          "version, max_cost_usd, max_tokens, ttl_ms, rationale, source) VALUES ($1, $2, 'chat', 'rule', 'chat', "
          "'gateway/chat', 'a', 'm', '1', 0.1, 100, 1000, 'r', 'decide') RETURNING id", run, tenant)[0].as<int64_t>();
      admin.exec_params0("INSERT INTO decision_feedback (decision_id, correct, actor) VALUES ($1, true, 'ops')", decision);
      const auto document = admin.exec_params1(
          "INSERT INTO rag_documents (tenant, doc_id, title, content_sha256, embed_model, text_bytes, chunk_count) "
          "VALUES ($1, 'doc-' || $2, 't', 's', 'm', 4, 1) RETURNING id", tenant, run)[0].as<int64_t>();
      const auto chunk = admin.exec_params1(
          "INSERT INTO rag_chunks (document_id, tenant, doc_id, ord, start_offset, end_offset, text, model, dim, "
          "embedding) VALUES ($1, $2, 'doc-' || $3, 0, 0, 4, 'text', 'm', 1, '\\x00000000') RETURNING id",
          document, tenant, run)[0].as<int64_t>();
      admin.exec_params0("INSERT INTO rag_chunk_deletions (chunk_id, tenant) VALUES ($1, $2)", chunk + 1000, tenant);
      const auto entity = admin.exec_params1("INSERT INTO kg_entities (tenant, name, norm_name, type) "
                                             "VALUES ($1, 'E', 'e' || $2, 'thing') RETURNING id", tenant, run)[0].as<int64_t>();
      const auto relation = admin.exec_params1("INSERT INTO kg_relations (tenant, source_id, target_id, type) "
                                               "VALUES ($1, $2, $2, 'is') RETURNING id", tenant, entity)[0].as<int64_t>();
      admin.exec_params0("INSERT INTO kg_provenance (tenant, chunk_id, entity_id) VALUES ($1, $2, $3)", tenant, chunk, entity);
      admin.exec_params0("INSERT INTO kg_provenance (tenant, chunk_id, relation_id) VALUES ($1, $2, $3)", tenant, chunk, relation);
      admin.exec_params0("INSERT INTO bus_latency_hours (hour, service, role, tenant, messages, wait_sum, handler_sum, "
                         "wait_buckets, wait_counts, handler_buckets, handler_counts) VALUES (date_trunc('hour', now()) "
                         "- $1 * interval '1 hour', 'test', 'echo', $2, 1, 0, 0, '{}', '{}', '{}', '{}')", run, tenant);
    }
    admin.commit();
  }
  struct Count {
    const char* table;
    int64_t acme;  // what a session scoped to acme may see
    int64_t all;   // what an unscoped daemon session sees
    bool edge_reads = true;  // whether the edge's role is among those daemons
  };
  const std::vector<Count> counts = {
      {"agent_messages", 2, 3},      {"workflow_runs", 1, 3},        {"workflow_steps", 1, 3},
      {"workflow_signals", 1, 3},    {"message_usage", 1, 3},        {"decisions", 1, 3},
      {"decision_feedback", 1, 3},   {"rag_documents", 1, 3},        {"rag_chunks", 1, 3},
      {"rag_chunk_deletions", 1, 3}, {"kg_entities", 1, 3},          {"kg_relations", 1, 3},
      {"kg_provenance", 2, 6},       {"tenant_spend", 1, 2},         {"tenant_spend_changes", 1, 3},
      {"bus_latency_hours", 1, 3, false},
  };
  // Every table under row security is counted here (bus_events below): a new tenant table
  // must join this list.
  {
    pqxx::read_transaction txn(*conn_);
    for (const auto& row : txn.exec("SELECT relname FROM pg_class WHERE relrowsecurity AND relkind = 'r' "
                                    "AND relnamespace = 'public'::regnamespace ORDER BY 1")) {
      const auto table = row[0].as<std::string>();
      const bool counted = table == "bus_events" || std::any_of(counts.begin(), counts.end(), [&](const Count& c) {
                             return table == c.table;
                           });
      EXPECT_TRUE(counted) << table << " has row security but no count in this test";
    }
  }
  const auto count_as = [](const std::string& user, const char* table, const char* tenant) {
    pqxx::connection conn(UrlAs(user));
    pqxx::read_transaction txn(conn);
    if (tenant != nullptr) {
      txn.exec_params1("SELECT set_config('role', cogo_role('tenant'), true), set_config('cogo.tenant', $1, true)",
                       tenant);
    }
    return txn.exec1("SELECT count(*) FROM " + std::string(table))[0].as<int64_t>();
  };
  for (const auto& [user, role] : kUsers) {
    for (const auto& c : counts) {
      EXPECT_EQ(count_as(user, c.table, "acme"), c.acme) << user << " scoped to acme: " << c.table;
      EXPECT_EQ(count_as(user, c.table, "nobody"), 0) << user << " scoped to an unknown tenant: " << c.table;
      const bool reads = c.edge_reads || std::string_view(role) != "cogo_edge";
      EXPECT_EQ(count_as(user, c.table, nullptr), reads ? c.all : 0) << user << " unscoped: " << c.table;
    }
  }
  // The trail of acme's messages only, and nothing at all when the tenant setting is missing.
  EXPECT_EQ(count_as("cogo_test_reader", "bus_events WHERE tenant <> 'acme'", "acme"), 0);
  EXPECT_GT(count_as("cogo_test_reader", "bus_events WHERE tenant <> 'acme'", nullptr), 0);
  pqxx::connection conn(UrlAs("cogo_test_reader"));
  pqxx::read_transaction txn(conn);
  txn.exec0("SET LOCAL ROLE cogo_tenant");
  EXPECT_EQ(txn.exec1("SELECT count(*) FROM agent_messages")[0].as<int64_t>(), 0);
  // The scoped role can read, never write, and cannot see the migrations' or workers' tables.
  EXPECT_TRUE(Refused("cogo_test_worker", "SET LOCAL ROLE cogo_tenant; UPDATE workflow_runs SET status = 'failed'"));
  EXPECT_TRUE(Refused("cogo_test_worker", "SET LOCAL ROLE cogo_tenant; SELECT count(*) FROM schema_migrations"));
}

// Role names are configurable (sql/023): a fresh database migrated with `cogo migrate
// --role-prefix cogox` names every role cogox_*, the cogo_* roles of 010 and 017 hold nothing
// there while the renamed ones hold what they held (tables a later migration creates included),
// and the daemons' paths work under the new names: a claim by route, a tenant's scoped read.
TEST_F(RolesTest, RoleNamesFollowTheConfiguredPrefix) {
  const std::string db = "cogo_prefix_" + std::to_string(getpid());
  const auto url_of = [&](const std::string& user) {
    const auto url = UrlAs(user);
    return url.substr(0, url.rfind('/') + 1) + db;
  };
  struct Scratch {  // the database and the cluster's cogox roles go, whatever the test's outcome
    pqxx::connection& admin;
    std::string db;
    ~Scratch() {
      pqxx::nontransaction txn(admin);
      txn.exec0("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
      txn.exec0("DROP ROLE IF EXISTS cogox_test_chat, cogox_test_edge");
      for (const char* kind : {"edge", "worker", "ops", "reader", "tenant", "brain", "executor", "gateway_chat",
                               "rag_embed", "rag_dispatcher", "kg_builder", "codegen", "build_test"}) {
        txn.exec0("DROP ROLE IF EXISTS cogox_" + std::string(kind));
      }
    }
  } scratch{*conn_, db};
  pqxx::nontransaction(*conn_).exec0("CREATE DATABASE " + db);
  const auto migrated = RunCommand("cogo", {"migrate", "--database-url", url_of("postgres"), "--role-prefix", "cogox"});
  ASSERT_EQ(migrated.status, 0) << migrated.output;

  pqxx::connection admin(url_of("postgres"));
  {
    pqxx::nontransaction txn(admin);
    EXPECT_EQ(txn.exec1("SELECT cogo_role('tenant')")[0].as<std::string>(), "cogox_tenant");
    EXPECT_EQ(txn.exec1("SELECT cogo_role('gateway_chat')")[0].as<std::string>(), "cogox_gateway_chat");
    const auto stale = txn.exec1(R"SQL(
      WITH old AS (SELECT oid FROM pg_roles
                   WHERE rolname IN ('cogo_edge', 'cogo_worker', 'cogo_ops', 'cogo_reader', 'cogo_tenant'))
      SELECT (SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a WHERE a.grantee IN (SELECT oid FROM old))
           + (SELECT count(*) FROM pg_attribute t, aclexplode(t.attacl) a WHERE a.grantee IN (SELECT oid FROM old))
           + (SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a WHERE a.grantee IN (SELECT oid FROM old))
           + (SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a WHERE a.grantee IN (SELECT oid FROM old))
           + (SELECT count(*) FROM pg_default_acl d, aclexplode(d.defaclacl) a WHERE a.grantee IN (SELECT oid FROM old))
           + (SELECT count(*) FROM pg_policy p WHERE p.polroles && ARRAY(SELECT oid FROM old)))SQL");
    EXPECT_EQ(stale[0].as<int64_t>(), 0) << "privileges or policies still name a cogo_* role";
    txn.exec0("CREATE TABLE later_table (x int)");  // as a later migration would
    const auto held = txn.exec1(
        "SELECT has_table_privilege('cogox_edge', 'agent_messages', 'INSERT'), "
        "has_column_privilege('cogox_reader', 'alert_transitions', 'notified_at', 'UPDATE'), "
        "has_table_privilege('cogox_worker', 'later_table', 'INSERT'), "
        "has_table_privilege('cogo_worker', 'later_table', 'INSERT'), "
        "has_table_privilege('cogo_edge', 'agent_messages', 'INSERT'), "
        "pg_has_role('cogox_gateway_chat', 'cogox_worker', 'MEMBER'), "
        "pg_has_role('cogox_edge', 'cogox_tenant', 'MEMBER'), "
        "(SELECT count(*) FROM pg_policy WHERE polroles && ARRAY['cogox_tenant'::regrole::oid])");
    EXPECT_TRUE(held[0].as<bool>());
    EXPECT_TRUE(held[1].as<bool>());
    EXPECT_TRUE(held[2].as<bool>());
    EXPECT_FALSE(held[3].as<bool>());
    EXPECT_FALSE(held[4].as<bool>());
    EXPECT_TRUE(held[5].as<bool>());
    EXPECT_TRUE(held[6].as<bool>());
    EXPECT_GT(held[7].as<int64_t>(), 10);
    txn.exec0("CREATE ROLE cogox_test_chat LOGIN IN ROLE cogox_gateway_chat");
    txn.exec0("CREATE ROLE cogox_test_edge LOGIN IN ROLE cogox_edge");
  }
  bus::Bus(admin).Publish(Message("{}", "gateway", "chat"));
  bus::Bus(admin).Publish(Message("{}", "orchestrator", "execute"));
  pqxx::connection chat_conn(url_of("cogox_test_chat"));
  bus::Bus chat(chat_conn);
  EXPECT_TRUE(chat.Claim({"chat-1", "orchestrator", "execute"}).empty());
  EXPECT_EQ(chat.Claim({"chat-1", "gateway", "chat"}).size(), 1u);
  pqxx::connection edge_conn(url_of("cogox_test_edge"));
  const auto scoped_count = [&](const char* tenant) {
    pqxx::read_transaction txn(edge_conn);
    txn.exec_params1("SELECT set_config('role', cogo_role('tenant'), true), set_config('cogo.tenant', $1, true)",
                     tenant);
    return txn.exec1("SELECT count(*) FROM agent_messages")[0].as<int64_t>();
  };
  EXPECT_EQ(scoped_count("tenant-a"), 2);
  EXPECT_EQ(scoped_count("nobody"), 0);
  {
    pqxx::work txn(edge_conn);
    EXPECT_THROW(txn.exec0("INSERT INTO agent_messages (service, role, tenant, payload) VALUES ('gateway', 'chat', 't', '{}')"),
                 pqxx::insufficient_privilege);
  }

  // The names are chosen once per database; a malformed prefix is refused before anything runs.
  const auto renamed = RunCommand("cogo", {"migrate", "--database-url", url_of("postgres"), "--role-prefix", "other"});
  EXPECT_NE(renamed.status, 0);
  EXPECT_NE(renamed.output.find("cogox_worker"), std::string::npos) << renamed.output;
  const auto malformed = RunCommand("cogo", {"migrate", "--database-url", url_of("postgres"), "--role-prefix", "Bad-Name"});
  EXPECT_NE(malformed.status, 0);
  EXPECT_NE(malformed.output.find("role prefix"), std::string::npos) << malformed.output;
  const auto again = RunCommand("cogo", {"migrate", "--database-url", url_of("postgres"), "--role-prefix", "cogox"});
  EXPECT_EQ(again.status, 0) << again.output;
}

}  // namespace
}  // namespace cogo::testing
