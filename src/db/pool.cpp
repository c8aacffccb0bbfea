#include "cogo/db/pool.h"

namespace cogo::db {

ConnectionPool::ConnectionPool(std::string url, std::string application_name, size_t max_idle,
                               ReconnectPolicy policy)
    : connector_(url, application_name, policy),
      impatient_(std::move(url), std::move(application_name),
                 {.first_pause = policy.first_pause, .max_pause = policy.max_pause,
                  .patience = std::chrono::milliseconds(1)}),
      max_idle_(max_idle) {}

void ConnectionPool::With(const std::function<void(pqxx::connection&)>& fn, Wait wait) {
  std::unique_ptr<pqxx::connection> conn;
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  // On an exception the connection is simply destroyed.
  WithRetry(wait == Wait::never ? impatient_ : connector_, conn, fn);
  // A call may handle the loss of its connection itself: a closed one would cost the next call
  // its one retry.
  if (!conn->is_open()) return;
  std::lock_guard lock(mu_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(conn));
}

}  // namespace cogo::db
