// db::ConnectionPool against a real server: a connection a call left closed is never handed out
// again (it would cost the next call its one retry on a fresh connection).
#include <string>

#include <pqxx/nontransaction>

#include "cogo/db/pool.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

TEST(ConnectionPoolTest, AConnectionACallLeftClosedIsNotHandedOutAgain) {
  db::ConnectionPool pool(DatabaseUrl(), "cogo-pool-test", 2);
  int first_pid = 0;
  pool.With([&](pqxx::connection& conn) {
    first_pid = conn.backendpid();
    ASSERT_TRUE(Scalar<bool>("SELECT pg_terminate_backend(" + std::to_string(first_pid) + ")"));
    ASSERT_TRUE(WaitFor([&] {
      return Scalar<int64_t>("SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(first_pid)) == 0;
    }));
    // The call meets the lost connection and handles it itself (e.g. answers with an error).
    EXPECT_ANY_THROW(pqxx::nontransaction(conn).exec("SELECT 1"));
  });
  int calls = 0;
  int second_pid = 0;
  pool.With([&](pqxx::connection& conn) {
    ++calls;
    second_pid = conn.backendpid();
    pqxx::nontransaction(conn).exec("SELECT 1");
  });
  EXPECT_EQ(calls, 1) << "the next call was handed the closed connection and had to run again";
  EXPECT_NE(second_pid, first_pid);
}

}  // namespace
}  // namespace cogo::testing
