// The migrator against a real PostgreSQL: concurrent migrators on a fresh database apply each
// migration once; an edited or missing landed migration stops it; a failing one rolls back; a
// non-transactional one builds its index concurrently and runs again after a failed build.
#include <filesystem>
#include <fstream>
#include <thread>

#include <pqxx/nontransaction>

#include "child_process.h"
#include "cogo/db/migrator.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

namespace fs = std::filesystem;

// A fresh, empty database for one test, dropped afterwards.
class MigratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(DatabaseUrl().empty());
    const auto slash = DatabaseUrl().rfind('/');
    admin_url_ = DatabaseUrl().substr(0, slash) + "/postgres";
    name_ = "cogo_migrate_" + std::to_string(getpid());
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction(admin).exec("DROP DATABASE IF EXISTS " + name_);
    pqxx::nontransaction(admin).exec("CREATE DATABASE " + name_);
    url_ = DatabaseUrl().substr(0, slash) + "/" + name_;
    dir_ = ScratchFile("sql");
    fs::create_directories(dir_);
  }
  void TearDown() override {
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction(admin).exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    fs::remove_all(dir_);
  }
  void CopyMigrations() {
    for (const auto& entry : fs::directory_iterator(db::DefaultSqlDir())) {
      fs::copy_file(entry.path(), dir_ / entry.path().filename());
    }
  }
  int64_t Recorded() {
    pqxx::connection conn(url_);
    return pqxx::nontransaction(conn).exec("SELECT count(*) FROM schema_migrations")[0][0].as<int64_t>();
  }
  std::string admin_url_, name_, url_;
  fs::path dir_;
};

TEST_F(MigratorTest, ConcurrentMigratorsApplyEachMigrationOnce) {
  const auto migrations = db::LoadMigrations(db::DefaultSqlDir());
  ASSERT_GE(migrations.size(), 2u);
  std::vector<size_t> applied(4, 0);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < applied.size(); ++i) {
    threads.emplace_back([&, i] {
      pqxx::connection conn(url_);
      applied[i] = db::Migrate(conn, migrations).applied.size();
    });
  }
  for (auto& t : threads) t.join();
  size_t total = 0;
  for (size_t n : applied) total += n;
  EXPECT_EQ(total, migrations.size());
  EXPECT_EQ(Recorded(), static_cast<int64_t>(migrations.size()));
  pqxx::connection conn(url_);
  EXPECT_TRUE(db::MigrationsCurrent(conn, migrations));
}

TEST_F(MigratorTest, EditedLandedMigrationIsRefused) {
  CopyMigrations();
  {
    pqxx::connection conn(url_);
    (void)db::Migrate(conn, db::LoadMigrations(dir_));
  }
  std::ofstream(dir_ / "001_bus.sql", std::ios::app) << "\n-- an innocent edit\n";
  pqxx::connection conn(url_);
  const auto edited = db::LoadMigrations(dir_);
  EXPECT_FALSE(db::MigrationsCurrent(conn, edited));
  try {
    (void)db::Migrate(conn, edited);
    FAIL() << "an edited migration was accepted";
  } catch (const db::MigrationError& e) {
    EXPECT_NE(std::string(e.what()).find("001_bus.sql changed"), std::string::npos) << e.what();
  }
}

TEST_F(MigratorTest, MissingLandedMigrationIsRefused) {
  CopyMigrations();
  {
    pqxx::connection conn(url_);
    (void)db::Migrate(conn, db::LoadMigrations(dir_));
  }
  fs::remove(dir_ / "002_execution.sql");
  pqxx::connection conn(url_);
  EXPECT_THROW((void)db::Migrate(conn, db::LoadMigrations(dir_)), db::MigrationError);
}

TEST_F(MigratorTest, FailingMigrationRollsBackAndIsNotRecorded) {
  CopyMigrations();
  std::ofstream(dir_ / "900_broken.sql") << "CREATE TABLE half_done (id int);\nSELECT nonsense FROM nowhere;\n";
  pqxx::connection conn(url_);
  EXPECT_ANY_THROW((void)db::Migrate(conn, db::LoadMigrations(dir_)));
  EXPECT_EQ(Recorded(), static_cast<int64_t>(db::LoadMigrations(db::DefaultSqlDir()).size()));
  EXPECT_EQ(pqxx::nontransaction(conn).exec("SELECT to_regclass('half_done') IS NULL")[0][0].as<bool>(), true);
}

TEST_F(MigratorTest, NonTransactionalMigrationBuildsConcurrentlyAndRunsAgainAfterAFailedBuild) {
  std::ofstream(dir_ / "001_table.sql") << "CREATE TABLE t (v int);\nINSERT INTO t VALUES (1), (1), (2);\n";
  std::ofstream(dir_ / "002_index.sql")
      << "-- cogo:no-transaction\n"
         "-- A unique index the duplicate 1s make fail halfway, leaving it INVALID.\n"
         "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_v ON t (v);\n"
         "CREATE TABLE IF NOT EXISTS after_index (id int);\n";
  const auto migrations = db::LoadMigrations(dir_);
  ASSERT_EQ(migrations.size(), 2u);
  EXPECT_TRUE(migrations[0].transactional);
  EXPECT_FALSE(migrations[1].transactional);
  pqxx::connection conn(url_);
  auto scalar = [&](const std::string& sql) { return pqxx::nontransaction(conn).exec(sql)[0][0]; };
  EXPECT_THROW((void)db::Migrate(conn, migrations), pqxx::sql_error);
  EXPECT_EQ(Recorded(), 1) << "a failed run is not recorded";
  ASSERT_FALSE(scalar("SELECT to_regclass('t_v') IS NULL").as<bool>());
  EXPECT_FALSE(scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v'::regclass").as<bool>())
      << "the failed concurrent build left an INVALID index";
  EXPECT_TRUE(scalar("SELECT to_regclass('after_index') IS NULL").as<bool>());

  pqxx::nontransaction(conn).exec("DELETE FROM t WHERE v = 1; INSERT INTO t VALUES (1)");
  const auto report = db::Migrate(conn, migrations);
  EXPECT_EQ(report.applied, std::vector<std::string>{"002_index.sql"});
  EXPECT_EQ(Recorded(), 2);
  EXPECT_TRUE(scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v'::regclass").as<bool>())
      << "IF NOT EXISTS alone would have skipped the INVALID index";
  EXPECT_FALSE(scalar("SELECT to_regclass('after_index') IS NULL").as<bool>());
  EXPECT_TRUE(db::MigrationsCurrent(conn, migrations));
}

TEST_F(MigratorTest, AConcurrentIndexBuildThatCouldNotRunAgainIsRefusedOnLoad) {
  std::ofstream(dir_ / "001_table.sql") << "CREATE TABLE t (v int);\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v ON t (v);\n", "-- cogo:no-transaction"},
      {"-- cogo:no-transaction\nCREATE INDEX CONCURRENTLY t_v ON t (v);\n", "IF NOT EXISTS <name>"},
      {"-- cogo:no-transaction\nCREATE INDEX CONCURRENTLY ON t (v);\n", "IF NOT EXISTS <name>"},
  };
  for (const auto& [sql, expected] : cases) {
    std::ofstream(dir_ / "002_index.sql") << sql;
    try {
      (void)db::LoadMigrations(dir_);
      ADD_FAILURE() << sql << ": accepted";
    } catch (const db::MigrationError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
}

TEST_F(MigratorTest, BadFileNamesAndDuplicateVersionsAreRefused) {
  std::ofstream(dir_ / "1_short.sql") << "SELECT 1;";
  EXPECT_THROW((void)db::LoadMigrations(dir_), db::MigrationError);
  fs::remove(dir_ / "1_short.sql");
  std::ofstream(dir_ / "005_a.sql") << "SELECT 1;";
  std::ofstream(dir_ / "005_b.sql") << "SELECT 1;";
  EXPECT_THROW((void)db::LoadMigrations(dir_), db::MigrationError);
  EXPECT_THROW((void)db::LoadMigrations(dir_ / "absent"), db::MigrationError);
}

TEST_F(MigratorTest, CliMigrateIsIdempotentAndExplainsRefusals) {
  auto first = RunCommand("cogo", {"migrate", "--database-url", url_});
  EXPECT_EQ(first.status, 0) << first.output;
  EXPECT_NE(first.output.find("001_bus.sql"), std::string::npos);
  auto second = RunCommand("cogo", {"migrate", "--database-url", url_});
  EXPECT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("\"applied\": []"), std::string::npos) << second.output;
  CopyMigrations();
  std::ofstream(dir_ / "002_execution.sql", std::ios::app) << "-- edited\n";
  auto refused = RunCommand("cogo", {"migrate", "--database-url", url_, "--sql-dir", dir_.string()});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.output.find("changed after it was applied"), std::string::npos) << refused.output;
}

TEST_F(MigratorTest, WorkerOnAnUnmigratedDatabaseStopsWithExitOne) {
  // A missing schema is not a dropped connection: the worker records it as fatal, stops
  // claiming, and the daemon drains and exits 1 instead of retrying forever.
  const auto log = ScratchFile("unmigrated.log");
  ChildProcess worker("cogo-test-worker",
                      {"--database-url", url_, "--service", "test", "--role", "echo"}, log);
  EXPECT_EQ(worker.Wait(std::chrono::seconds(20)), 1) << "see " << log;
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("claim loop stopped"), std::string::npos) << text;
  EXPECT_NE(text.find("stopping: claim"), std::string::npos) << text;
}

}  // namespace
}  // namespace cogo::testing
