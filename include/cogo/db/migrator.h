// Schema migrations: numbered files `NNN_name.sql` applied in order, each in its own
// transaction, under an advisory lock so concurrent migrators queue instead of racing, and
// recorded in schema_migrations with a SHA-256 of the file. A recorded migration whose file
// changed (or vanished) stops the migrator: landed migrations are never edited.
// Thread-safety: free functions; the connection is used by the calling thread only.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/connection>

namespace cogo::db {

struct Migration {
  int version = 0;
  std::string name;      // file name, e.g. 001_bus.sql
  std::string sql;
  std::string checksum;  // hex SHA-256 of the file's bytes
};

class MigrationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The directory migrations are read from: $COGO_SQL_DIR, else the source tree's sql/ when it
// exists (development), else the installed share/cogo/sql.
[[nodiscard]] std::filesystem::path DefaultSqlDir();

// Reads and orders the directory's migrations; throws MigrationError on a malformed file name
// or a duplicate version.
[[nodiscard]] std::vector<Migration> LoadMigrations(const std::filesystem::path& dir);

struct MigrationReport {
  std::vector<std::string> applied;  // names applied by this call, in order
  int current_version = 0;
};

// Verifies recorded checksums, then applies what is missing. Throws MigrationError when a
// recorded migration's file changed or is missing.
MigrationReport Migrate(pqxx::connection& conn, const std::vector<Migration>& migrations);

// True when every migration is recorded with a matching checksum (for readiness checks).
[[nodiscard]] bool MigrationsCurrent(pqxx::connection& conn,
                                     const std::vector<Migration>& migrations);

}  // namespace cogo::db
