#include "pg_fixture.h"

#include <cstdlib>
#include <thread>

#include <pqxx/nontransaction>
#include <pqxx/result>

#include "cogo/db/connection.h"
#include "cogo/db/migrator.h"

namespace cogo::testing {

const std::string& DatabaseUrl() {
  static const std::string url = [] {
    const char* env = std::getenv("COGO_TEST_DATABASE_URL");
    return std::string(env == nullptr ? "" : env);
  }();
  return url;
}

std::string UrlAs(const std::string& user) {
  const auto& url = DatabaseUrl();
  const auto scheme = url.find("://") + 3;
  const auto at = url.find('@', scheme);
  return url.substr(0, scheme) + user + url.substr(at);
}

std::string ScalarText(const std::string& sql) {
  pqxx::connection conn(DatabaseUrl());
  pqxx::nontransaction txn(conn);
  const auto rows = txn.exec(sql);
  return rows[0][0].is_null() ? std::string() : rows[0][0].as<std::string>();
}

template <typename T>
T Scalar(const std::string& sql) {
  pqxx::connection conn(DatabaseUrl());
  pqxx::nontransaction txn(conn);
  return txn.exec(sql)[0][0].as<T>();
}
template int64_t Scalar<int64_t>(const std::string&);
template int Scalar<int>(const std::string&);
template bool Scalar<bool>(const std::string&);
template double Scalar<double>(const std::string&);

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

void BusTest::SetUp() {
  ASSERT_FALSE(DatabaseUrl().empty())
      << "COGO_TEST_DATABASE_URL is not set: run the tests with `scripts/cogo-dev test`";
  conn_ = db::Connect(DatabaseUrl(), "cogo-test");
  pqxx::nontransaction(*conn_).exec(
      "TRUNCATE agent_messages, bus_events, bus_workers, message_usage, decisions, decision_feedback, "
      "agent_versions, agent_version_events, workflow_runs, "
      "workflow_steps, workflow_signals, workflow_definitions, alert_states, alert_transitions, "
      "bus_latency_hours, bus_latency_rollup_state, tenant_spend, tenant_spend_changes RESTART IDENTITY");
  bus_ = std::make_unique<bus::Bus>(*conn_);
}

bus::PublishRequest Message(const std::string& payload, const std::string& service,
                            const std::string& role) {
  bus::PublishRequest r;
  r.service = service;
  r.role = role;
  r.tenant = "tenant-a";
  r.payload_json = payload;
  return r;
}

std::string Trail(int64_t id) {
  return ScalarText("SELECT string_agg(event, ' ' ORDER BY at, ord, id) FROM bus_trail WHERE message_id = " +
                    std::to_string(id));
}

}  // namespace cogo::testing

// Migrates the test database once, then runs the tests.
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (GTEST_FLAG_GET(list_tests)) return RUN_ALL_TESTS();
  if (cogo::testing::DatabaseUrl().empty()) {
    std::fprintf(stderr, "COGO_TEST_DATABASE_URL is not set: run `scripts/cogo-dev test`\n");
    return 1;
  }
  try {
    auto conn = cogo::db::Connect(cogo::testing::DatabaseUrl(), "cogo-test-migrate");
    (void)cogo::db::Migrate(*conn, cogo::db::LoadMigrations(cogo::db::DefaultSqlDir()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cannot migrate the test database: %s\n", e.what());
    return 1;
  }
  return RUN_ALL_TESTS();
}
