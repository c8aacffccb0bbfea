// Private helpers shared by cogo's HTTP servers (cpp-httplib): JSON responses, JSON error
// bodies `{error, message}` for every 4xx/5xx (including httplib's own 404/413), readiness.
// Thread-safe: stateless functions.
#pragma once

#include <httplib.h>

#include <string>
#include <string_view>
#include <vector>

#include "cogo/db/migrator.h"
#include "cogo/db/pool.h"

namespace cogo::http {

void SendJson(httplib::Response& res, int status, const std::string& body);
void SendError(httplib::Response& res, int status, std::string_view error, std::string_view message);
// Gives httplib's own error responses (unknown path 404, oversize 413, ...) a JSON body.
void InstallJsonErrors(httplib::Server& server);
// Parses `text` as a positive message id; 0 when it is not one.
[[nodiscard]] int64_t ParseId(const std::string& text);

// /readyz: the database is reachable and every migration this build ships is applied.
class Readiness {
 public:
  Readiness();  // loads the shipped migrations; a failure is reported by every Send
  void Send(httplib::Response& res, db::ConnectionPool& pool) const;

 private:
  std::vector<db::Migration> migrations_;
  std::string load_error_;
};

}  // namespace cogo::http
