#include "cogo/db/pool.h"

#include "cogo/db/connection.h"

namespace cogo::db {

ConnectionPool::ConnectionPool(std::string url, std::string application_name, size_t max_idle)
    : url_(std::move(url)), application_name_(std::move(application_name)), max_idle_(max_idle) {}

void ConnectionPool::With(const std::function<void(pqxx::connection&)>& fn) {
  std::unique_ptr<pqxx::connection> conn;
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!conn || !conn->is_open()) conn = Connect(url_, application_name_);
  fn(*conn);  // on an exception the connection is simply destroyed
  std::lock_guard lock(mu_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(conn));
}

}  // namespace cogo::db
