#include "cogo/db/connection.h"

#include <pqxx/nontransaction>

namespace cogo::db {

std::unique_ptr<pqxx::connection> Connect(const std::string& url,
                                          std::string_view application_name) {
  auto conn = std::make_unique<pqxx::connection>(url);
  pqxx::nontransaction txn(*conn);
  txn.exec("SET application_name = " + txn.quote(std::string(application_name)));
  return conn;
}

}  // namespace cogo::db
