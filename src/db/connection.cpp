#include "cogo/db/connection.h"

#include <pqxx/except>
#include <pqxx/nontransaction>

namespace cogo::db {

std::unique_ptr<pqxx::connection> Connect(const std::string& url,
                                          std::string_view application_name) {
  auto conn = std::make_unique<pqxx::connection>(url);
  pqxx::nontransaction txn(*conn);
  txn.exec("SET application_name = " + txn.quote(std::string(application_name)));
  return conn;
}

bool IsTransient(const std::exception& error) {
  if (dynamic_cast<const pqxx::in_doubt_error*>(&error) != nullptr) return false;
  if (dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr) return true;
  if (dynamic_cast<const pqxx::transaction_rollback*>(&error) != nullptr) return true;
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error)) {
    const std::string& state = sql->sqlstate();
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection.
    return state == "57P01" || state == "57P02" || state == "57P03" || state.rfind("08", 0) == 0;
  }
  return false;
}

bool IsInDoubt(const std::exception& error) {
  return dynamic_cast<const pqxx::in_doubt_error*>(&error) != nullptr;
}

}  // namespace cogo::db
