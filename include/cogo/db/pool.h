// A small pool of database connections for request handlers (HTTP servers): a handler borrows
// one connection for the length of a call, under the project's connection rule (db/reconnect.h):
// a call that fails because its connection was lost (a stale connection after a database
// restart, a terminated backend) runs once more on a fresh connection, waiting a bounded time
// while the server is down; a lost connection is never handed out again. Thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "cogo/db/reconnect.h"

namespace cogo::db {

class ConnectionPool {
 public:
  // Connections are opened lazily; at most `max_idle` are kept between calls.
  ConnectionPool(std::string url, std::string application_name, size_t max_idle = 8,
                 ReconnectPolicy policy = {});

  // Runs `fn` with a connection (db::WithRetry: once more on a fresh connection after a lost
  // one). Exceptions propagate (db::Unavailable when the server stayed unreachable); the
  // connection is then dropped rather than reused, as is one `fn` left closed.
  // `Wait::never` gives up at the server's first refusal (a readiness probe must answer at once).
  enum class Wait { while_unreachable, never };
  void With(const std::function<void(pqxx::connection&)>& fn, Wait wait = Wait::while_unreachable);

 private:
  Connector connector_;
  Connector impatient_;
  size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
};

}  // namespace cogo::db
