#include "cogo/db/migrator.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "cogo/base/digest.h"

namespace cogo::db {
namespace {

// Distinct from the bus's advisory-lock classes (001: 1668245295, 005: 1668245297).
constexpr int kMigrationLockKey = 1668245296;

constexpr const char* kCreateTable = R"SQL(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text        NOT NULL,
  checksum   text        NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
))SQL";

// version -> (name, checksum) as recorded.
std::map<int, std::pair<std::string, std::string>> Recorded(pqxx::transaction_base& txn) {
  std::map<int, std::pair<std::string, std::string>> out;
  for (const auto& row : txn.exec("SELECT version, name, checksum FROM schema_migrations")) {
    out[row[0].as<int>()] = {row[1].as<std::string>(), row[2].as<std::string>()};
  }
  return out;
}

void VerifyRecorded(const std::map<int, std::pair<std::string, std::string>>& recorded,
                    const std::vector<Migration>& migrations) {
  for (const auto& [version, entry] : recorded) {
    auto it = std::find_if(migrations.begin(), migrations.end(),
                           [v = version](const Migration& m) { return m.version == v; });
    if (it == migrations.end()) {
      throw MigrationError("migration " + entry.first +
                           " is recorded in the database but its file is missing");
    }
    if (it->checksum != entry.second) {
      throw MigrationError("migration " + it->name +
                           " changed after it was applied (checksum mismatch); add a new "
                           "migration instead of editing a landed one");
    }
  }
}

}  // namespace

std::filesystem::path DefaultSqlDir() {
  if (const char* env = std::getenv("COGO_SQL_DIR"); env != nullptr && *env != '\0') return env;
  if (std::filesystem::is_directory(COGO_SOURCE_SQL_DIR)) return COGO_SOURCE_SQL_DIR;
  return COGO_SQL_DIR;
}

std::vector<Migration> LoadMigrations(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) {
    throw MigrationError("migration directory " + dir.string() + " does not exist");
  }
  static const std::regex kName(R"((\d{3,})_[A-Za-z0-9_]+\.sql)");
  std::vector<Migration> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || entry.path().extension() != ".sql") continue;
    std::smatch match;
    if (!std::regex_match(name, match, kName)) {
      throw MigrationError("migration file " + name + " is not named NNN_name.sql");
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    Migration m{std::stoi(match[1].str()), name, bytes.str(), ""};
    m.checksum = base::Sha256Hex(m.sql);
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i].version == out[i - 1].version) {
      throw MigrationError("migrations " + out[i - 1].name + " and " + out[i].name +
                           " share a version number");
    }
  }
  return out;
}

MigrationReport Migrate(pqxx::connection& conn, const std::vector<Migration>& migrations) {
  // A session-level lock, so it spans the per-migration transactions below.
  const std::string key = std::to_string(kMigrationLockKey);
  pqxx::nontransaction(conn).exec("SELECT pg_advisory_lock(" + key + ")");
  struct Unlock {
    pqxx::connection& conn;
    std::string key;
    ~Unlock() {
      try {
        if (conn.is_open()) pqxx::nontransaction(conn).exec("SELECT pg_advisory_unlock(" + key + ")");
      } catch (...) {
        // The session ending releases the lock anyway.
      }
    }
  } unlock{conn, key};

  MigrationReport report;
  std::map<int, std::pair<std::string, std::string>> recorded;
  {
    pqxx::work txn(conn, "migrate_check");
    txn.exec(kCreateTable);
    recorded = Recorded(txn);
    txn.commit();
  }
  VerifyRecorded(recorded, migrations);
  report.current_version = recorded.empty() ? 0 : recorded.rbegin()->first;
  for (const Migration& m : migrations) {
    if (recorded.count(m.version) != 0) continue;
    pqxx::work txn(conn, "migrate");
    txn.exec(m.sql);
    txn.exec_params("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version, m.name, m.checksum);
    txn.commit();
    report.applied.push_back(m.name);
    report.current_version = m.version;
  }
  return report;
}

bool MigrationsCurrent(pqxx::connection& conn, const std::vector<Migration>& migrations) {
  pqxx::read_transaction txn(conn);
  if (txn.exec("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0].as<bool>() == false) {
    return false;
  }
  const auto recorded = Recorded(txn);
  for (const Migration& m : migrations) {
    auto it = recorded.find(m.version);
    if (it == recorded.end() || it->second.second != m.checksum) return false;
  }
  return true;
}

}  // namespace cogo::db
