// A small pool of database connections for request handlers (HTTP servers): a handler borrows
// one connection for the length of a call. A connection that fails with a transient error is
// discarded instead of returned, so the next borrower gets a fresh one. Thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>

namespace cogo::db {

class ConnectionPool {
 public:
  // Connections are opened lazily; at most `max_idle` are kept between calls.
  ConnectionPool(std::string url, std::string application_name, size_t max_idle = 8);

  // Runs `fn` with a connection (opened if none is idle). Exceptions propagate; the connection
  // is then dropped rather than reused.
  void With(const std::function<void(pqxx::connection&)>& fn);

 private:
  std::string url_;
  std::string application_name_;
  size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
};

}  // namespace cogo::db
