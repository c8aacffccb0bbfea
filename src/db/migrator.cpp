#include "cogo/db/migrator.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

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

constexpr const char* kRecord =
    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)";

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

// Whitespace and comments before a statement's first word.
std::string_view WithoutLeadingComments(std::string_view text) {
  while (true) {
    const size_t first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    text.remove_prefix(first);
    if (text.substr(0, 2) == "--") {
      const size_t eol = text.find('\n');
      if (eol == std::string_view::npos) return {};
      text.remove_prefix(eol + 1);
    } else if (text.substr(0, 2) == "/*") {
      const size_t end = text.find("*/");
      if (end == std::string_view::npos) return {};
      text.remove_prefix(end + 2);
    } else {
      return text;
    }
  }
}

bool IsIdentifierChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '$' || static_cast<unsigned char>(c) >= 0x80;
}

// The end (one past) of the quoted text, comment or dollar-quoted body starting at `i`, or `i`
// when none starts there. Unterminated: the end of the script.
size_t SkipQuoted(std::string_view sql, size_t i) {
  const char c = sql[i];
  const auto to = [&](std::string_view closing, size_t from) {
    const size_t end = sql.find(closing, from);
    return end == std::string_view::npos ? sql.size() : end + closing.size();
  };
  if (sql.substr(i, 2) == "--") return to("\n", i + 2);
  if (sql.substr(i, 2) == "/*") {  // comments nest in PostgreSQL
    int depth = 0;
    size_t j = i;
    while (j + 1 < sql.size()) {
      if (sql.substr(j, 2) == "/*") {
        ++depth;
        j += 2;
      } else if (sql.substr(j, 2) == "*/") {
        j += 2;
        if (--depth == 0) return j;
      } else {
        ++j;
      }
    }
    return sql.size();
  }
  if (c == '\'') {
    const bool escapes = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                         (i < 2 || !IsIdentifierChar(sql[i - 2]));
    for (size_t j = i + 1; j < sql.size(); ++j) {
      if (escapes && sql[j] == '\\') ++j;
      else if (sql[j] == '\'') return j + 1;  // '' is two strings back to back: same split
    }
    return sql.size();
  }
  if (c == '"') return to("\"", i + 1);
  if (c == '$' && (i == 0 || !IsIdentifierChar(sql[i - 1]))) {
    size_t j = i + 1;
    while (j < sql.size() && IsIdentifierChar(sql[j]) && sql[j] != '$') ++j;
    const bool tag_ok = j == i + 1 || !(sql[i + 1] >= '0' && sql[i + 1] <= '9');  // $1 is a parameter
    if (j < sql.size() && sql[j] == '$' && tag_ok) return to(sql.substr(i, j + 1 - i), j + 1);
  }
  return i;
}

// True when the database has an index of this name that is not valid (a failed or
// interrupted CREATE INDEX CONCURRENTLY leaves one behind; IF NOT EXISTS would skip it).
constexpr const char* kIndexInvalid =
    "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid)";

void CheckNonTransactional(const Migration& m) {
  for (const std::string& statement : SplitStatements(m.sql)) {
    const ConcurrentIndex index = ConcurrentIndexOf(statement);
    if (!index.concurrently) continue;
    if (m.transactional) {
      throw MigrationError("migration " + m.name + " builds index " + index.name +
                           " CONCURRENTLY, which cannot run in a transaction: make its first line " +
                           kNoTransactionMarker);
    }
    if (index.name.empty() || !index.if_not_exists) {
      throw MigrationError("migration " + m.name +
                           ": CREATE INDEX CONCURRENTLY must say IF NOT EXISTS <name>, so that a "
                           "run interrupted after it can run again");
    }
  }
}

}  // namespace

std::vector<std::string> SplitStatements(std::string_view sql) {
  std::vector<std::string> out;
  size_t start = 0;
  bool has_code = false;
  auto emit = [&](size_t end) {
    if (has_code) {
      std::string_view text = sql.substr(start, end - start);
      const size_t first = text.find_first_not_of(" \t\r\n");
      const size_t last = text.find_last_not_of(" \t\r\n");
      out.emplace_back(text.substr(first, last - first + 1));
    }
    has_code = false;
  };
  for (size_t i = 0; i < sql.size();) {
    const size_t skipped = SkipQuoted(sql, i);
    if (skipped != i) {
      has_code = has_code || (sql[i] != '-' && sql[i] != '/');
      i = skipped;
      continue;
    }
    if (sql[i] == ';') {
      emit(i);
      start = ++i;
      continue;
    }
    if (sql[i] != ' ' && sql[i] != '\t' && sql[i] != '\r' && sql[i] != '\n') has_code = true;
    ++i;
  }
  emit(sql.size());
  return out;
}

ConcurrentIndex ConcurrentIndexOf(std::string_view statement) {
  static const std::regex kCreate(
      R"(^CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY(\s+IF\s+NOT\s+EXISTS)?\s+("[^"]+"|[A-Za-z0-9_.$]+))",
      std::regex::icase);
  const std::string text(WithoutLeadingComments(statement));
  std::smatch match;
  if (!std::regex_search(text, match, kCreate)) return {};
  ConcurrentIndex out{true, match[3].str(), match[2].matched};
  // "CREATE INDEX CONCURRENTLY ON t (...)": PostgreSQL picks the name.
  std::string lower = out.name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!out.if_not_exists && lower == "on") out.name.clear();
  return out;
}

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
    const std::string_view first_line = std::string_view(m.sql).substr(0, m.sql.find('\n'));
    m.transactional = first_line.substr(0, first_line.find_last_not_of(" \t\r") + 1) != kNoTransactionMarker;
    CheckNonTransactional(m);
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
  // A session-level lock, so it spans the per-migration transactions below. Tried, not waited
  // for: a session waiting in pg_advisory_lock holds a snapshot, and CREATE INDEX CONCURRENTLY
  // in the holder waits for every older snapshot, so holder and waiter would wait on each other.
  const std::string key = std::to_string(kMigrationLockKey);
  while (!pqxx::nontransaction(conn).exec("SELECT pg_try_advisory_lock(" + key + ")")[0][0].as<bool>()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
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
    if (m.transactional) {
      pqxx::work txn(conn, "migrate");
      txn.exec(m.sql);
      txn.exec_params(kRecord, m.version, m.name, m.checksum);
      txn.commit();
    } else {
      // Each statement commits on its own; the record comes last, so a failure anywhere leaves
      // the migration unrecorded and the next run starts it again from its first statement.
      for (const std::string& statement : SplitStatements(m.sql)) {
        pqxx::nontransaction txn(conn, "migrate");
        const ConcurrentIndex index = ConcurrentIndexOf(statement);
        if (index.concurrently && txn.exec_params1(kIndexInvalid, index.name)[0].as<bool>()) {
          txn.exec("DROP INDEX CONCURRENTLY IF EXISTS " + index.name);
        }
        txn.exec(statement);
      }
      pqxx::nontransaction(conn, "migrate").exec_params(kRecord, m.version, m.name, m.checksum);
    }
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

void UseRolePrefix(pqxx::connection& conn, const std::string& prefix) {
  static const std::regex kPrefix("[a-z][a-z0-9_]{0,39}");
  if (!std::regex_match(prefix, kPrefix)) {
    throw MigrationError("role prefix '" + prefix +
                         "': use lowercase letters, digits and _ (at most 40, starting with a letter)");
  }
  pqxx::nontransaction txn(conn);
  if (!txn.exec1("SELECT to_regclass('cogo_db_roles')")[0].is_null()) {
    const auto named = txn.exec1("SELECT name FROM cogo_db_roles WHERE kind = 'worker'")[0].as<std::string>();
    if (named != prefix + "_worker") {
      throw MigrationError("role prefix '" + prefix + "': this database's roles are named " + named +
                           " and so on (cogo_db_roles)");
    }
  }
  txn.exec_params1("SELECT set_config('cogo.role_prefix', $1, false)", prefix);
}

}  // namespace cogo::db
