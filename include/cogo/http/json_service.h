// JsonService: the one HTTP server for cogo's JSON services (the edge, the brain's REST API, the
// workflow API, ...). A service is a route table on it; the skeleton owns everything else: the
// thread pool, /healthz, /readyz, /openapi.json, authentication, JSON errors, limits, security
// headers, request ids and request logging. Thread-safe: handlers run concurrently on the pool.
//
// Adding a JSON service, in full (a daemon's build function):
//
//   http::JsonServiceOptions http;                  // host, port (0 = any), threads, limits
//   http.database_url = ctx.options.database_url;
//   http.authenticate = http::BearerJwt(secret);    // needed once any route is not kPublic
//   auto api = std::make_unique<http::JsonService>("cogo-foo", http, ctx.logger);
//   api->Add({{"GET", "/api/foos/{id}", http::Access::kAnyToken, "one foo of the caller's tenant",
//              [&db = *api](const http::Request& req) {
//                const int64_t id = http::ParseId(req.Param("id"));
//                std::optional<std::string> foo;
//                if (id > 0) db.Read(req, [&](pqxx::read_transaction& txn) { foo = LoadFoo(txn, id, req.TenantScope()); });
//                return foo ? http::Json(200, *foo) : http::Error(404, "not_found", "no such foo");
//              }}});
//   components.push_back(std::move(api));          // a runtime::Component: Start binds, Drain stops
//
// What every route gets without asking:
// - Access: kPublic routes run without authentication; kAnyToken routes run only with claims the
//   authenticator accepted (else its 401/403 `{error, message}`); kServiceRole routes also need
//   role service_role (else 403 `service_role_required`). Tenant tokens see their tenant only:
//   filter reads with Request::TenantScope() (answer 404, not 403, for another tenant's row so
//   existence does not leak) and check a tenant named in a body with CheckTenant (403); Read
//   also scopes the database session to the tenant (row-level security), under that filter.
// - A handler that throws a database failure (db::Classify: connection lost, rolled back, in
//   doubt) gets 503 `{error: "unavailable"}` with `Retry-After: 1`; any other exception 500
//   `internal`. The exception text goes to the log with the request id, never to the client.
// - Every 4xx/5xx, httplib's own included (unknown path 404, oversize 413, unreadable 400), has a
//   JSON body `{error, message}`. Every response carries X-Request-Id (the client's, when it is
//   1..128 of [A-Za-z0-9._:-], else a generated one), `X-Content-Type-Options: nosniff`,
//   `Cache-Control: no-store`, `X-Frame-Options: DENY`, `Content-Security-Policy: default-src
//   'none'; frame-ancestors 'none'` and `Referrer-Policy: no-referrer`.
// - Limits (JsonServiceOptions): body size (413), header count and bytes (431), and a deadline
//   for the whole request (headers and body) so a client that dribbles bytes is cut off after
//   `request_timeout_ms` instead of holding a pool thread (slowloris).
// - One log line per request: method, path, status, error code, milliseconds, request id; 5xx
//   at warn, 4xx at info, the rest at debug. Headers and bodies are never logged.
// - GET /healthz: 200 while the process runs. GET /readyz: 200 when the database answers and
//   every shipped migration is applied; 503 `draining` from the start of Drain (the listener
//   stays open `drain_delay_ms` so a load balancer sees it), else 503 with the reason.
// - GET /openapi.json (when `openapi`): an OpenAPI 3 document generated from the route table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <pqxx/transaction>
#include <spdlog/logger.h>

#include "cogo/auth/jwt.h"
#include "cogo/db/pool.h"
#include "cogo/runtime/daemon.h"

namespace httplib {
struct Request;
}
namespace CLI {
class App;
}

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace cogo::http {

// What a handler returns. `body` is JSON text, sent as application/json, unless the handler
// names another content type (a page, a script, Prometheus text). A header named here replaces
// the skeleton's default of that name (a page's own Content-Security-Policy).
struct Response {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra, e.g. Retry-After
  std::string content_type = "application/json";
};
[[nodiscard]] Response Json(int status, std::string body);
// `{"error": error, "message": message}`. Never put a secret or request content in `message`.
[[nodiscard]] Response Error(int status, std::string_view error, std::string_view message);
[[nodiscard]] std::string ErrorJson(std::string_view error, std::string_view message);
// A positive message id from a path capture; 0 when the text is not one.
[[nodiscard]] int64_t ParseId(std::string_view text);

// One request as a handler sees it; valid only during the handler call.
class Request {
 public:
  [[nodiscard]] std::string_view method() const;
  [[nodiscard]] std::string_view path() const;
  [[nodiscard]] std::string_view body() const;
  [[nodiscard]] std::optional<std::string_view> Header(std::string_view name) const;
  // The first value of the query parameter `name` (decoded); nullopt when absent.
  [[nodiscard]] std::optional<std::string_view> Query(std::string_view name) const;
  // The `{name}` capture of the route's pattern; empty when the pattern has none by that name.
  [[nodiscard]] std::string_view Param(std::string_view name) const;
  // The verified claims; null on kPublic routes (and inside the authenticator).
  [[nodiscard]] const auth::Claims* claims() const { return claims_; }
  // The tenant the caller may see: the token's tenant, or nullopt (every tenant) for
  // service_role and public routes.
  [[nodiscard]] std::optional<std::string> TenantScope() const;
  [[nodiscard]] std::string_view id() const { return id_; }  // the request id

  Request(const httplib::Request& raw, const std::vector<std::string>* param_names,
          const auth::Claims* claims, std::string_view id)
      : raw_(raw), param_names_(param_names), claims_(claims), id_(id) {}

 private:
  const httplib::Request& raw_;
  const std::vector<std::string>* param_names_;
  const auth::Claims* claims_;
  std::string_view id_;
};

// nullopt when the caller may act for `tenant` (its token names it, or it is service_role);
// else 403 `tenant_mismatch`.
[[nodiscard]] std::optional<Response> CheckTenant(const Request& request, std::string_view tenant);

// The tenant a request acts for: a tenant token's own (`named`, when not empty, must be it:
// else 403 tenant_mismatch), or the one a service_role token names (`named` empty: 400
// missing_key). `what` says what the tenant is for, in the refusal's message.
[[nodiscard]] std::variant<std::string, Response> ActingTenant(const Request& request, const std::string& named,
                                                               std::string_view what);

enum class Access { kPublic, kAnyToken, kServiceRole };

using Handler = std::function<Response(const Request&)>;

struct Route {
  std::string method;   // GET, POST, PUT, PATCH, DELETE
  std::string pattern;  // "/api/messages/{id}": a {name} matches one non-empty path segment
  Access access = Access::kServiceRole;
  std::string summary;  // one line, for /openapi.json
  Handler handler;
};

// The authentication step: the caller's verified claims, or the refusal to send (401/403).
using Authenticator = std::function<std::variant<auth::Claims, Response>(const Request&)>;

// `Authorization: Bearer <HS256 JWT>` verified with `secret` at the current time; refusals are
// 401 with the auth::AuthError code. Throws std::invalid_argument on an empty secret.
[[nodiscard]] Authenticator BearerJwt(std::string secret, auth::VerifyOptions verify = {});

struct JsonServiceOptions {
  std::string database_url;            // the pool behind Read(), pool() and /readyz
  std::string host = "127.0.0.1";      // loopback unless an operator exposes it
  int port = 0;                        // 0 = any free port; port() tells which
  int threads = 4;                     // pool threads, and at most as many idle DB connections
  size_t max_body_bytes = 1 << 20;     // larger bodies: 413 body_too_large
  size_t max_header_count = 64;        // more headers: 431 headers_too_large
  size_t max_header_bytes = 16 << 10;  // request line + headers; more: 431 headers_too_large
  int request_timeout_ms = 10000;      // the whole request (headers + body) must arrive within
  int read_timeout_ms = 5000;          // one read may wait this long for bytes
  int write_timeout_ms = 5000;         // one write may wait this long
  int idle_timeout_ms = 5000;          // a keep-alive connection idle this long is closed
  int keep_alive_max_requests = 100;   // then the connection is closed
  int drain_delay_ms = 0;              // /readyz is 503 this long before the listener closes
  bool openapi = true;                 // serve GET /openapi.json
  Authenticator authenticate;          // required by any route that is not kPublic
  // Set: /readyz also answers 503 workers_not_ready while this is false (a daemon's workers
  // still connecting, Worker::ready()). Called on request threads: must be thread-safe.
  std::function<bool()> workers_ready;
  prometheus::Registry* registry = nullptr;  // cogo_http_requests_total and _duration_seconds per
                                             // route when set (the daemon's; must outlive the service)
};

// --listen-host, --port (env <env_prefix>_HOST, <env_prefix>_PORT), --http-threads,
// --http-request-timeout-ms, --http-drain-delay-ms.
void AddHttpOptions(CLI::App& app, JsonServiceOptions& options, const std::string& env_prefix);

class JsonService final : public runtime::Component {
 public:
  // `name` names the service in logs and /openapi.json. Throws std::invalid_argument on bad
  // options.
  JsonService(std::string name, JsonServiceOptions options, std::shared_ptr<spdlog::logger> logger);
  ~JsonService() override;
  JsonService(const JsonService&) = delete;
  JsonService& operator=(const JsonService&) = delete;

  // Adds routes; before Start only. Throws std::invalid_argument on a bad pattern or method, a
  // duplicate route, or an authenticated route without an authenticator.
  void Add(std::vector<Route> routes);

  void Start() override;  // binds (throws when the port is taken) and serves
  void Drain() override;  // /readyz turns 503, then after drain_delay_ms stops and finishes requests
  [[nodiscard]] int port() const;  // the bound port once started

  // Runs `fn` in a read-only transaction on a pooled connection, scoped to what `caller` may
  // see: for a tenant token the transaction runs as the role cogo_tenant with the token's tenant
  // in cogo.tenant, so row-level security (sql/017) hides every other tenant's rows even from a
  // query that forgets its tenant filter. Service-role and public requests read unscoped.
  // Exceptions propagate (a handler that lets a database failure go answers 503).
  void Read(const Request& caller, const std::function<void(pqxx::read_transaction&)>& fn);
  [[nodiscard]] db::ConnectionPool& pool();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cogo::http
