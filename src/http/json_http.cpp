#include "http/json_http.h"

#include <charconv>

#include "cogo/edge/ingress.h"

namespace cogo::http {

void SendJson(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void SendError(httplib::Response& res, int status, std::string_view error, std::string_view message) {
  SendJson(res, status, edge::ErrorJson(error, message));
}

void InstallJsonErrors(httplib::Server& server) {
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    switch (res.status) {
      case 404: SendError(res, 404, "not_found", "no such endpoint"); break;
      case 405: SendError(res, 405, "method_not_allowed", "method not allowed here"); break;
      case 413: SendError(res, 413, "body_too_large", "the body is too large"); break;
      case 414: SendError(res, 414, "uri_too_long", "the request URI is too long"); break;
      default:
        SendError(res, res.status, res.status >= 500 ? "internal" : "bad_request",
                  res.status >= 500 ? "internal error" : "the request could not be read");
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, 500, "internal", "internal error");
  });
}

int64_t ParseId(const std::string& text) {
  int64_t id = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || ptr != text.data() + text.size() || id <= 0) return 0;
  return id;
}

Readiness::Readiness() {
  try {
    migrations_ = db::LoadMigrations(db::DefaultSqlDir());
  } catch (const std::exception& e) {
    load_error_ = e.what();
  }
}

void Readiness::Send(httplib::Response& res, db::ConnectionPool& pool) const {
  if (!load_error_.empty()) {
    return SendError(res, 503, "migrations_unavailable", "cannot read the migrations");
  }
  try {
    bool current = false;
    pool.With([&](pqxx::connection& conn) { current = db::MigrationsCurrent(conn, migrations_); },
              db::ConnectionPool::Wait::never);
    if (!current) return SendError(res, 503, "migrations_pending", "the schema is not current");
    SendJson(res, 200, R"({"status":"ready"})");
  } catch (const std::exception&) {
    res.set_header("Retry-After", "1");
    SendError(res, 503, "database_unreachable", "the database cannot be reached");
  }
}

}  // namespace cogo::http
