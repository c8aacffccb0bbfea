// Private helpers shared by cogo's HTTP servers (cpp-httplib): JSON responses, JSON error
// bodies `{error, message}` for every 4xx/5xx (including httplib's own 404/413), readiness.
// Thread-safe: stateless functions.
#pragma once

#include <httplib.h>

#include <string>
#include <string_view>

namespace cogo::http {

void SendJson(httplib::Response& res, int status, const std::string& body);
void SendError(httplib::Response& res, int status, std::string_view error, std::string_view message);
// Gives httplib's own error responses (unknown path 404, oversize 413, ...) a JSON body.
void InstallJsonErrors(httplib::Server& server);
// Parses `text` as a positive message id; 0 when it is not one.
[[nodiscard]] int64_t ParseId(const std::string& text);

}  // namespace cogo::http
