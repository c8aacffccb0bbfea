// How a non-transactional migration is read: its script split into statements (comments,
// strings and dollar-quoted bodies kept whole) and each CREATE INDEX CONCURRENTLY found with
// its name, so the migrator can drop an INVALID leftover before building it again.
#include "cogo/db/migrator.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cogo::db {
namespace {

TEST(DbSplitStatements, SplitsOnlyAtTopLevelSemicolons) {
  struct Case {
    std::string name;
    std::string sql;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"two statements", "SELECT 1;\nSELECT 2;\n", {"SELECT 1", "SELECT 2"}},
      {"no final semicolon", "SELECT 1; SELECT 2", {"SELECT 1", "SELECT 2"}},
      {"blank and comment-only pieces dropped", ";;\n-- the end; really\n", {}},
      {"line comment kept with its statement", "-- why; because\nSELECT 1;",
       {"-- why; because\nSELECT 1"}},
      {"block comment, nested", "/* a; /* b; */ c; */ SELECT 1;", {"/* a; /* b; */ c; */ SELECT 1"}},
      {"string with semicolon and doubled quote", "SELECT 'a;''b';SELECT 2",
       {"SELECT 'a;''b'", "SELECT 2"}},
      {"escape string", R"(SELECT E'\';';SELECT 2)", {R"(SELECT E'\';')", "SELECT 2"}},
      {"quoted identifier", R"(SELECT 1 AS "x;y";)", {R"(SELECT 1 AS "x;y")"}},
      {"dollar-quoted body", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\nSELECT 2;",
       {"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$", "SELECT 2"}},
      {"tagged dollar quote holding $$", "DO $body$ BEGIN PERFORM $$;$$; END $body$; SELECT 2",
       {"DO $body$ BEGIN PERFORM $$;$$; END $body$", "SELECT 2"}},
      {"parameter is not a dollar quote", "PREPARE p AS SELECT $1; SELECT 2",
       {"PREPARE p AS SELECT $1", "SELECT 2"}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(SplitStatements(c.sql), c.expected) << c.name;
  }
}

TEST(DbConcurrentIndex, FindsTheIndexAConcurrentBuildNames) {
  struct Case {
    std::string statement;
    bool concurrently;
    std::string name;
    bool if_not_exists;
  };
  const std::vector<Case> cases = {
      {"CREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x)", true, "t_x", true},
      {"-- why\n/* more */ create unique index concurrently if not exists s.t_x on s.t (x)", true,
       "s.t_x", true},
      {"CREATE INDEX CONCURRENTLY t_x ON t (x)", true, "t_x", false},
      {"CREATE INDEX CONCURRENTLY ON t (x)", true, "", false},
      {R"(CREATE INDEX CONCURRENTLY IF NOT EXISTS "Odd Name" ON t (x))", true, R"("Odd Name")", true},
      {"CREATE INDEX t_x ON t (x)", false, "", false},
      {"SELECT 'CREATE INDEX CONCURRENTLY x ON t (x)'", false, "", false},
  };
  for (const auto& c : cases) {
    const ConcurrentIndex index = ConcurrentIndexOf(c.statement);
    EXPECT_EQ(index.concurrently, c.concurrently) << c.statement;
    EXPECT_EQ(index.name, c.name) << c.statement;
    EXPECT_EQ(index.if_not_exists, c.if_not_exists) << c.statement;
  }
}

}  // namespace
}  // namespace cogo::db
