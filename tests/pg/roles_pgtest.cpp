// Least privilege (sql/010_roles.sql): the README stack runs with each daemon logged in as a
// user of its group role, and each role is refused what it must not do.
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include <nlohmann/json.hpp>

#include "cogo/auth/jwt.h"
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

  static constexpr std::pair<const char*, const char*> kUsers[] = {
      {"cogo_test_edge", "cogo_edge"},
      {"cogo_test_worker", "cogo_worker"},
      {"cogo_test_ops", "cogo_ops"},
      {"cogo_test_reader", "cogo_reader"},
  };
};

TEST_F(RolesTest, TheStackRunsWithEachDaemonInItsRole) {
  const auto log = ScratchFile("roles.log");
  const auto routing = SourcePath("config/routing.example.json");
  const auto policy = SourcePath("config/policy.example.json");
  const auto worker_url = UrlAs("cogo_test_worker");
  Daemon edge("cogo-edge", {"--routing", routing, "--database-url", UrlAs("cogo_test_edge")}, log);
  Daemon brain("cogo-orchestrator-brain",
               {"--routing", routing, "--policy", policy, "--poll-ms", "100", "--database-url", worker_url}, log);
  WorkerDaemon executor("cogo-executor-dispatcher",
                        {"--policy", policy, "--poll-ms", "100", "--database-url", worker_url}, log);
  WorkerDaemon chat("cogo-gateway-chat", {"--policy", policy, "--poll-ms", "100", "--database-url", worker_url}, log);

  const std::map<std::string, std::string> headers = {
      {"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, "authenticated", "acme")},
      {"apikey", kTestPublishableKey}};
  constexpr const char* kIngress = "/functions/v1/orchestrator-chat";
  const auto accepted =
      HttpPost(edge.port(), kIngress, R"({"tenant":"acme","intent":"chat","payload":{"message":"hi"}})", headers);
  ASSERT_EQ(accepted.status, 202) << accepted.body << " see " << log;
  const auto id = json::parse(accepted.body)["id"].get<int64_t>();
  json view;
  ASSERT_TRUE(WaitFor([&] {
    view = json::parse(HttpGet(edge.port(), std::string(kIngress) + "/" + std::to_string(id), headers).body);
    return view["status"] == "done" || view["status"] == "failed";
  })) << view.dump() << " see " << log;
  EXPECT_EQ(view["status"], "done") << view.dump() << " see " << log;
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
      {"cogo_test_worker", "UPDATE agent_messages SET priority = 1 WHERE id = " + row, false},
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
    admin.exec0("INSERT INTO workflow_definitions (workflow_id, version, digest, definition) "
                "VALUES ('rls', 1, 'rls-digest', '{}')");
    for (const char* tenant : {"acme", "globex", "globex"}) {
      const auto run = admin.exec_params1("INSERT INTO workflow_runs (tenant, workflow_id, version, parameters) "
                                          "VALUES ($1, 'rls', 1, '{}') RETURNING id", tenant)[0].as<int64_t>();
      admin.exec_params0("INSERT INTO workflow_steps (run_id, node, activation, node_type, status) "
                         "VALUES ($1, 'a', 1, 'publish', 'running')", run);
      admin.exec_params0("INSERT INTO workflow_signals (run_id, name, data) VALUES ($1, 'go', '{}')", run);
    }
    admin.commit();
  }
  struct Count {
    const char* table;
    int64_t acme;  // what a session scoped to acme may see
    int64_t all;   // what an unscoped daemon session sees
  };
  const std::vector<Count> counts = {
      {"agent_messages", 2, 3},  {"workflow_runs", 1, 3}, {"workflow_steps", 1, 3},
      {"workflow_signals", 1, 3}, {"decisions", 0, 0},
  };
  const auto count_as = [](const std::string& user, const char* table, const char* tenant) {
    pqxx::connection conn(UrlAs(user));
    pqxx::read_transaction txn(conn);
    if (tenant != nullptr) {
      txn.exec_params1("SELECT set_config('role', 'cogo_tenant', true), set_config('cogo.tenant', $1, true)", tenant);
    }
    return txn.exec1("SELECT count(*) FROM " + std::string(table))[0].as<int64_t>();
  };
  for (const auto& [user, role] : kUsers) {
    for (const auto& c : counts) {
      EXPECT_EQ(count_as(user, c.table, "acme"), c.acme) << user << " scoped to acme: " << c.table;
      EXPECT_EQ(count_as(user, c.table, "nobody"), 0) << user << " scoped to an unknown tenant: " << c.table;
      EXPECT_EQ(count_as(user, c.table, nullptr), c.all) << user << " unscoped: " << c.table;
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

}  // namespace
}  // namespace cogo::testing
