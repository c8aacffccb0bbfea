// Schema migrations: numbered files `NNN_name.sql` applied in order, each in its own
// transaction, under an advisory lock so concurrent migrators queue instead of racing, and
// recorded in schema_migrations with a SHA-256 of the file. A recorded migration whose file
// changed (or vanished) stops the migrator: landed migrations are never edited.
// A file whose first line is exactly `-- cogo:no-transaction` runs one statement at a time in
// autocommit, so it may build an index without blocking writes (CREATE INDEX CONCURRENTLY); it
// is recorded only after its last statement succeeded, so it must be safe to run again.
// Thread-safety: free functions; the connection is used by the calling thread only.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/connection>

namespace cogo::db {

inline constexpr const char* kNoTransactionMarker = "-- cogo:no-transaction";

struct Migration {
  int version = 0;
  std::string name;      // file name, e.g. 001_bus.sql
  std::string sql;
  std::string checksum;  // hex SHA-256 of the file's bytes
  bool transactional = true;  // false: the first line is kNoTransactionMarker
};

class MigrationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The directory migrations are read from: $COGO_SQL_DIR, else the source tree's sql/ when it
// exists (development), else the installed share/cogo/sql.
[[nodiscard]] std::filesystem::path DefaultSqlDir();

// Reads and orders the directory's migrations; throws MigrationError on a malformed file name,
// a duplicate version, or a non-transactional migration with a CREATE INDEX CONCURRENTLY that
// does not say `IF NOT EXISTS <name>` (it could not be run again).
[[nodiscard]] std::vector<Migration> LoadMigrations(const std::filesystem::path& dir);

struct MigrationReport {
  std::vector<std::string> applied;  // names applied by this call, in order
  int current_version = 0;
};

// Verifies recorded checksums, then applies what is missing. Throws MigrationError when a
// recorded migration's file changed or is missing. Before a non-transactional migration's
// CREATE INDEX CONCURRENTLY IF NOT EXISTS runs, an INVALID index of that name (left by a build
// that failed or was interrupted) is dropped, so the retry builds it instead of skipping it.
MigrationReport Migrate(pqxx::connection& conn, const std::vector<Migration>& migrations);

// The statements of a script, split at top-level semicolons; comments, quoted strings,
// quoted identifiers and dollar-quoted bodies are kept whole. Blank statements are dropped.
[[nodiscard]] std::vector<std::string> SplitStatements(std::string_view sql);

// Whether a statement is a `CREATE [UNIQUE] INDEX CONCURRENTLY`, the index name as written
// (empty when it names none) and whether it says IF NOT EXISTS.
struct ConcurrentIndex {
  bool concurrently = false;
  std::string name;
  bool if_not_exists = false;
};
[[nodiscard]] ConcurrentIndex ConcurrentIndexOf(std::string_view statement);

// The roles' names are <prefix>_<kind> (sql/023_route_roles.sql reads the prefix from the session
// setting cogo.role_prefix; default cogo). Sets the setting on `conn` for the migrations that
// follow. Throws MigrationError for a prefix that is not [a-z][a-z0-9_]{0,39}, or when this
// database's roles were already named with another prefix (renaming them is not a migration).
void UseRolePrefix(pqxx::connection& conn, const std::string& prefix);

// True when every migration is recorded with a matching checksum (for readiness checks).
[[nodiscard]] bool MigrationsCurrent(pqxx::connection& conn,
                                     const std::vector<Migration>& migrations);

}  // namespace cogo::db
