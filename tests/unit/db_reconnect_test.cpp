// The one classification of database failures (db::Classify) and the reconnect backoff: what each
// failure libpqxx raises means for a retry. No database: the exceptions are built as libpqxx
// builds them (libpqxx 6 raises a lost connection as broken_connection, SQLSTATE 40003 as
// statement_completion_unknown, a server-side 57P0x without a broken socket as sql_error).
#include "cogo/db/reconnect.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace cogo::db {
namespace {

using std::chrono::milliseconds;

struct ClassifyCase {
  std::string name;
  std::function<void()> raise;
  FailureKind expected;
};

TEST(DbClassify, EachFailureHasOneMeaning) {
  const ClassifyCase cases[] = {
      // The connection broke: nothing in flight committed.
      {"broken_connection", [] { throw pqxx::broken_connection("server closed the connection"); },
       FailureKind::connection_lost},
      {"too_many_connections", [] { throw pqxx::too_many_connections("53300"); },
       FailureKind::connection_lost},
      {"unavailable", [] { throw Unavailable("the database cannot be reached"); },
       FailureKind::connection_lost},
      {"57P01 admin_shutdown", [] { throw pqxx::sql_error("terminating", "SELECT 1", "57P01"); },
       FailureKind::connection_lost},
      {"57P02 crash_shutdown", [] { throw pqxx::sql_error("crash", "SELECT 1", "57P02"); },
       FailureKind::connection_lost},
      {"57P03 cannot_connect_now", [] { throw pqxx::sql_error("starting up", "", "57P03"); },
       FailureKind::connection_lost},
      {"08006 connection_failure", [] { throw pqxx::sql_error("lost", "SELECT 1", "08006"); },
       FailureKind::connection_lost},
      {"08001 cannot_connect", [] { throw pqxx::sql_error("refused", "", "08001"); },
       FailureKind::connection_lost},
      // Rolled back by the server: run the transaction again.
      {"serialization_failure", [] { throw pqxx::serialization_failure("40001"); },
       FailureKind::rolled_back},
      {"deadlock_detected", [] { throw pqxx::deadlock_detected("40P01"); },
       FailureKind::rolled_back},
      {"transaction_rollback", [] { throw pqxx::transaction_rollback("40000"); },
       FailureKind::rolled_back},
      {"40001 as sql_error", [] { throw pqxx::sql_error("could not serialize", "", "40001"); },
       FailureKind::rolled_back},
      // It may have committed: never retried blindly.
      {"in_doubt_error", [] { throw pqxx::in_doubt_error("connection lost during COMMIT"); },
       FailureKind::in_doubt},
      {"statement_completion_unknown", [] { throw pqxx::statement_completion_unknown("40003"); },
       FailureKind::in_doubt},
      {"40003 as sql_error", [] { throw pqxx::sql_error("completion unknown", "", "40003"); },
       FailureKind::in_doubt},
      // Everything else: a retry gives the same answer.
      {"unique_violation", [] { throw pqxx::unique_violation("dup", "INSERT", "23505"); },
       FailureKind::other},
      {"undefined_table", [] { throw pqxx::undefined_table("no table", "SELECT", "42P01"); },
       FailureKind::other},
      {"57014 query_canceled", [] { throw pqxx::sql_error("canceled", "SELECT", "57014"); },
       FailureKind::other},
      {"sql_error without state", [] { throw pqxx::sql_error("odd"); }, FailureKind::other},
      {"pqxx::failure", [] { throw pqxx::failure("Could not obtain client encoding."); },
       FailureKind::other},
      {"usage_error", [] { throw pqxx::usage_error("two transactions"); }, FailureKind::other},
      {"std::runtime_error", [] { throw std::runtime_error("a bug"); }, FailureKind::other},
  };
  for (const auto& c : cases) {
    try {
      c.raise();
      ADD_FAILURE() << c.name << " raised nothing";
    } catch (const std::exception& e) {
      EXPECT_EQ(FailureKindName(Classify(e)), FailureKindName(c.expected)) << c.name;
    }
  }
}

TEST(DbReconnect, ALoopSurvivesWhatCommittedNothingAndADoubtOnlyWhenItsRepeatIsHarmless) {
  struct Case {
    FailureKind kind;
    InDoubt in_doubt;
    bool survives;
  };
  const Case cases[] = {
      {FailureKind::connection_lost, InDoubt::fatal, true},
      {FailureKind::connection_lost, InDoubt::retry, true},
      {FailureKind::rolled_back, InDoubt::fatal, true},
      {FailureKind::rolled_back, InDoubt::retry, true},
      {FailureKind::in_doubt, InDoubt::fatal, false},
      {FailureKind::in_doubt, InDoubt::retry, true},
      {FailureKind::other, InDoubt::fatal, false},
      {FailureKind::other, InDoubt::retry, false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(LoopSurvives(c.kind, c.in_doubt), c.survives)
        << FailureKindName(c.kind) << (c.in_doubt == InDoubt::retry ? " (doubt harmless)" : "");
  }
}

TEST(DbReconnect, PauseStartsShortAndDoublesToTheCap) {
  const ReconnectPolicy policy{milliseconds(50), milliseconds(1000), milliseconds(5000)};
  const std::pair<int, int> steps[] = {{0, 50}, {50, 100}, {100, 200}, {400, 800}, {800, 1000},
                                       {1000, 1000}, {-5, 50}};
  for (const auto& [previous, next] : steps) {
    EXPECT_EQ(NextPause(milliseconds(previous), policy).count(), next) << "after " << previous;
  }
}

TEST(DbReconnect, AServerThatNeverAnswersIsUnavailableWithinPatience) {
  // Port 1 on the loopback refuses at once: Open waits per the policy, then gives up.
  const Connector connector("postgresql://nobody@127.0.0.1:1/none", "cogo-test",
                            {milliseconds(10), milliseconds(20), milliseconds(100)});
  const auto started = std::chrono::steady_clock::now();
  EXPECT_THROW((void)connector.Open(), Unavailable);
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, milliseconds(50));
  EXPECT_LT(waited, milliseconds(2000));
}

}  // namespace
}  // namespace cogo::db
