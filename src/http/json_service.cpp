#include "cogo/http/json_service.h"

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>

#include "cogo/base/unix_time.h"
#include "cogo/db/migrator.h"
#include "cogo/db/reconnect.h"
#include "http/guarded_server.h"
#include "http/route_pattern.h"

namespace cogo::http {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kRequestIdHeader = "X-Request-Id";

std::string GenerateRequestId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  char text[17];
  const auto [end, ec] = std::to_chars(text, text + 16, random(), 16);
  return std::string(16 - static_cast<size_t>(end - text), '0') + std::string(text, end);
}

// Paths are logged, so control characters (a decoded %0A) must not forge log lines.
std::string Printable(std::string_view text, size_t max) {
  std::string out(text.substr(0, max));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (text.size() > max) out += "...";
  return out;
}

// httplib's own refusals, which reach the error handler without a body.
Response LibraryError(int status) {
  switch (status) {
    case 400: return Error(400, "bad_request", "the request could not be read");
    case 404: return Error(404, "not_found", "no such endpoint");
    case 405: return Error(405, "method_not_allowed", "method not allowed here");
    case 408: return Error(408, "request_timeout", "the request did not arrive in time");
    case 413: return Error(413, "body_too_large", "the body is too large");
    case 414: return Error(414, "uri_too_long", "the request URI is too long");
    case 416: return Error(416, "range_not_satisfiable", "the range cannot be served");
    case 431: return Error(431, "headers_too_large", "too many or too large request headers");
    default:
      return status >= 500 ? Error(status, "internal", "internal error")
                           : Error(status, "bad_request", "the request could not be read");
  }
}

void Write(httplib::Response& res, const Response& out) {
  res.status = out.status;
  for (const auto& [name, value] : out.headers) {
    res.headers.erase(name);  // a default of the same name (set before the handler ran) goes
    res.set_header(name, value);
  }
  res.set_content(out.body, out.content_type);
}

std::string_view AccessName(Access access) {
  switch (access) {
    case Access::kPublic: return "public";
    case Access::kAnyToken: return "any_token";
    case Access::kServiceRole: return "service_role";
  }
  return "unknown";
}

struct CompiledRoute {
  Route route;
  RoutePattern pattern;
};

}  // namespace

Response Json(int status, std::string body) { return Response{status, std::move(body), {}}; }

std::string ErrorJson(std::string_view error, std::string_view message) {
  return json{{"error", error}, {"message", message}}.dump();
}

Response Error(int status, std::string_view error, std::string_view message) {
  return Json(status, ErrorJson(error, message));
}

int64_t ParseId(std::string_view text) {
  int64_t id = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || ptr != text.data() + text.size() || id <= 0) return 0;
  return id;
}

std::string_view Request::method() const { return raw_.method; }
std::string_view Request::path() const { return raw_.path; }
std::string_view Request::body() const { return raw_.body; }

std::optional<std::string_view> Request::Header(std::string_view name) const {
  const auto it = raw_.headers.find(std::string(name));
  if (it == raw_.headers.end()) return std::nullopt;
  return std::string_view(it->second);
}

std::optional<std::string_view> Request::Query(std::string_view name) const {
  const auto it = raw_.params.find(std::string(name));
  if (it == raw_.params.end()) return std::nullopt;
  return std::string_view(it->second);
}

std::string_view Request::Param(std::string_view name) const {
  if (param_names_ == nullptr) return {};
  for (size_t i = 0; i < param_names_->size(); ++i) {
    if ((*param_names_)[i] != name || i + 1 >= raw_.matches.size()) continue;
    const auto& match = raw_.matches[i + 1];
    if (!match.matched || match.length() == 0) return {};
    return std::string_view(&*match.first, static_cast<size_t>(match.length()));
  }
  return {};
}

std::optional<std::string> Request::TenantScope() const {
  if (claims_ == nullptr || claims_->role == auth::Role::kServiceRole) return std::nullopt;
  return claims_->tenant;
}

std::optional<Response> CheckTenant(const Request& request, std::string_view tenant) {
  const auth::AuthError refused = auth::AuthError::kTenantMismatch;
  if (request.claims() == nullptr || auth::CheckTenantAccess(*request.claims(), tenant)) {
    return Error(auth::HttpStatus(refused), auth::ToString(refused), auth::Describe(refused));
  }
  return std::nullopt;
}

std::variant<std::string, Response> ActingTenant(const Request& request, const std::string& named,
                                                std::string_view what) {
  if (const auto scope = request.TenantScope()) {
    if (!named.empty()) {
      if (auto refused = CheckTenant(request, named)) return *refused;
    }
    return *scope;
  }
  if (named.empty()) return Error(400, "missing_key", "tenant: a service_role token names " + std::string(what));
  return named;
}

Authenticator BearerJwt(std::string secret, auth::VerifyOptions verify) {
  if (secret.empty()) throw std::invalid_argument("the JWT secret is not set");
  return [secret = std::move(secret), verify](const Request& request) -> std::variant<auth::Claims, Response> {
    const auto verified =
        auth::VerifyAuthorizationHeader(request.Header("Authorization"), secret, base::UnixSeconds(), verify);
    if (verified.ok()) return verified.claims();
    auto refusal = Error(auth::HttpStatus(verified.error()), auth::ToString(verified.error()),
                         auth::Describe(verified.error()));
    refusal.headers.emplace_back("WWW-Authenticate", "Bearer");
    return refusal;
  };
}

void AddHttpOptions(CLI::App& app, JsonServiceOptions& options, const std::string& env_prefix) {
  app.add_option("--listen-host", options.host, "HTTP listen address (loopback by default)")
      ->envname(env_prefix + "_HOST")->capture_default_str();
  app.add_option("--port", options.port, "HTTP port; 0 = any free port (logged)")
      ->envname(env_prefix + "_PORT")->check(CLI::Range(0, 65535))->capture_default_str();
  app.add_option("--http-threads", options.threads)->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--http-request-timeout-ms", options.request_timeout_ms,
                 "a request's headers and body must arrive within this")
      ->check(CLI::Range(100, 600000))->capture_default_str();
  app.add_option("--http-drain-delay-ms", options.drain_delay_ms,
                 "on drain, /readyz answers 503 this long before the listener closes")
      ->check(CLI::Range(0, 600000))->capture_default_str();
}

class JsonService::Impl {
 public:
  Impl(std::string name, JsonServiceOptions options, std::shared_ptr<spdlog::logger> logger)
      : name_(std::move(name)),
        options_(std::move(options)),
        logger_(std::move(logger)),
        pool_(options_.database_url, name_, static_cast<size_t>(options_.threads)),
        server_(ConnectionLimits{milliseconds(options_.request_timeout_ms),
                                 milliseconds(options_.read_timeout_ms),
                                 milliseconds(options_.write_timeout_ms),
                                 milliseconds(options_.idle_timeout_ms), options_.max_header_bytes,
                                 static_cast<size_t>(options_.keep_alive_max_requests)},
                static_cast<size_t>(std::max(options_.threads, 1))) {
    if (options_.threads < 1 || options_.port < 0 || options_.port > 65535 ||
        options_.request_timeout_ms <= 0 || options_.read_timeout_ms <= 0 ||
        options_.write_timeout_ms <= 0 || options_.idle_timeout_ms <= 0 ||
        options_.keep_alive_max_requests < 1 || options_.drain_delay_ms < 0) {
      throw std::invalid_argument(name_ + ": invalid HTTP options");
    }
    try {
      migrations_ = db::LoadMigrations(db::DefaultSqlDir());
    } catch (const std::exception& e) {
      migrations_error_ = e.what();
    }
    server_.set_payload_max_length(options_.max_body_bytes);
    server_.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                                 {"Cache-Control", "no-store"},
                                 {"X-Frame-Options", "DENY"},
                                 {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
                                 {"Referrer-Policy", "no-referrer"}});
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      const auto it = req.headers.find(kRequestIdHeader);
      res.set_header(kRequestIdHeader, it != req.headers.end() && ValidRequestId(it->second)
                                           ? it->second : GenerateRequestId());
      if (req.headers.size() > options_.max_header_count) {
        Write(res, LibraryError(431));
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server_.set_error_handler(httplib::Server::HandlerWithResponse(
        [](const httplib::Request&, httplib::Response& res) {
          if (!res.has_header(kRequestIdHeader)) res.set_header(kRequestIdHeader, GenerateRequestId());
          if (res.status == 400 && CurrentCutOff() == CutOff::kHeadersTooLarge) res.status = 431;
          if (res.status == 400 && CurrentCutOff() == CutOff::kTimedOut) res.status = 408;
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          Write(res, LibraryError(res.status));
          return httplib::Server::HandlerResponse::Handled;
        }));
    if (options_.registry) {
      requests_ = &prometheus::BuildCounter()
                       .Name("cogo_http_requests_total")
                       .Help("Requests answered, per route pattern, method and status")
                       .Register(*options_.registry);
      durations_ = &prometheus::BuildHistogram()
                        .Name("cogo_http_request_duration_seconds")
                        .Help("Time from routing a request to its answer, per route pattern and method")
                        .Register(*options_.registry);
    }
    server_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      Write(res, LibraryError(500));
    });
    server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) { Log(req, res); });
    Add({{"GET", "/healthz", Access::kPublic, "liveness: 200 while the process runs",
          [](const Request&) { return Json(200, R"({"status":"ok"})"); }},
         {"GET", "/readyz", Access::kPublic,
          "readiness: database reachable, migrations applied, not draining",
          [this](const Request&) { return Ready(); }}});
    if (options_.openapi) {
      Add({{"GET", "/openapi.json", Access::kPublic, "this document",
            [this](const Request&) { return Json(200, openapi_); }}});
    }
  }

  void Add(std::vector<Route> routes) {
    if (started_) throw std::invalid_argument(name_ + ": routes are added before Start");
    for (auto& route : routes) {
      const auto pattern = CompileRoutePattern(route.pattern);
      if (!pattern) throw std::invalid_argument(name_ + ": bad route pattern " + route.pattern);
      if (route.access != Access::kPublic && !options_.authenticate) {
        throw std::invalid_argument(name_ + ": " + route.pattern + " needs an authenticator");
      }
      if (!route.handler) throw std::invalid_argument(name_ + ": " + route.pattern + " has no handler");
      if (route.method != "GET" && route.method != "POST" && route.method != "PUT" &&
          route.method != "PATCH" && route.method != "DELETE") {
        throw std::invalid_argument(name_ + ": unsupported method " + route.method);
      }
      for (const auto& other : routes_) {
        if (other->route.method == route.method && other->route.pattern == route.pattern) {
          throw std::invalid_argument(name_ + ": duplicate route " + route.method + " " + route.pattern);
        }
      }
      routes_.push_back(std::make_unique<CompiledRoute>(CompiledRoute{std::move(route), *pattern}));
      Register(*routes_.back());
    }
  }

  void Start() {
    started_ = true;
    openapi_ = OpenApi();
    port_ = options_.port;
    if (port_ == 0) {
      port_ = server_.bind_to_any_port(options_.host);
      if (port_ < 0) throw std::runtime_error(name_ + ": cannot bind " + options_.host + ":0");
    } else if (!server_.bind_to_port(options_.host, port_)) {
      throw std::runtime_error(name_ + ": cannot bind " + options_.host + ":" + std::to_string(port_) +
                               " (in use, or not permitted)");
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    logger_->info("{} listening on http://{}:{} ({} routes, {} threads)", name_, options_.host, port_,
                  routes_.size(), options_.threads);
  }

  void Drain() {
    if (!thread_.joinable()) return;
    draining_ = true;
    if (options_.drain_delay_ms > 0) {
      logger_->info("{} draining: /readyz answers 503 for {} ms before the listener closes", name_,
                    options_.drain_delay_ms);
      std::this_thread::sleep_for(milliseconds(options_.drain_delay_ms));
    }
    server_.stop();
    thread_.join();
  }

  ~Impl() { Drain(); }

  int port() const { return port_; }
  db::ConnectionPool& pool() { return pool_; }

 private:
  void Register(const CompiledRoute& compiled) {
    auto handler = [this, &compiled](const httplib::Request& req, httplib::Response& res) {
      Serve(compiled, req, res);
    };
    const auto& method = compiled.route.method;
    const auto& regex = compiled.pattern.regex;
    if (method == "GET") server_.Get(regex, handler);
    else if (method == "POST") server_.Post(regex, handler);
    else if (method == "PUT") server_.Put(regex, handler);
    else if (method == "PATCH") server_.Patch(regex, handler);
    else server_.Delete(regex, handler);
  }

  void Serve(const CompiledRoute& compiled, const httplib::Request& raw, httplib::Response& res) {
    const auto started = std::chrono::steady_clock::now();
    Answer(compiled, raw, res);
    if (!requests_) return;
    // Labelled by pattern, not path: one series per route, whatever ids the paths carry.
    const auto& route = compiled.route;
    requests_->Add({{"method", route.method}, {"route", route.pattern}, {"status", std::to_string(res.status)}})
        .Increment();
    durations_->Add({{"method", route.method}, {"route", route.pattern}}, kDurationBuckets)
        .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }

  void Answer(const CompiledRoute& compiled, const httplib::Request& raw, httplib::Response& res) {
    const std::string id = res.get_header_value(kRequestIdHeader);
    const Route& route = compiled.route;
    try {
      std::optional<auth::Claims> claims;
      if (route.access != Access::kPublic) {
        auto outcome = options_.authenticate(Request(raw, &compiled.pattern.params, nullptr, id));
        if (auto* refusal = std::get_if<Response>(&outcome)) return Write(res, *refusal);
        claims = std::get<auth::Claims>(std::move(outcome));
        if (route.access == Access::kServiceRole && claims->role != auth::Role::kServiceRole) {
          return Write(res, Error(403, "service_role_required", "this endpoint needs a service_role token"));
        }
      }
      Write(res, route.handler(Request(raw, &compiled.pattern.params, claims ? &*claims : nullptr, id)));
    } catch (const std::exception& e) {
      // The database (lost, rolled back, or in doubt: every write we make is idempotent or
      // keyed) may answer on a retry; anything else is a bug a retry repeats.
      const auto kind = db::Classify(e);
      logger_->error("{} {} failed (request {}, {}): {}", route.method, route.pattern, id,
                     db::FailureKindName(kind), e.what());
      if (kind == db::FailureKind::other) return Write(res, LibraryError(500));
      auto unavailable = Error(503, "unavailable", "the service is unavailable; retry later");
      unavailable.headers.emplace_back("Retry-After", "1");
      Write(res, unavailable);
    }
  }

  Response Ready() {
    if (draining_) return Error(503, "draining", "the service is shutting down");
    if (!migrations_error_.empty()) return Error(503, "migrations_unavailable", "cannot read the migrations");
    try {
      bool current = false;
      // A probe answers at once: no waiting for a restarting server.
      pool_.With([&](pqxx::connection& conn) { current = db::MigrationsCurrent(conn, migrations_); },
                 db::ConnectionPool::Wait::never);
      if (!current) return Error(503, "migrations_pending", "the schema is not current");
      if (options_.workers_ready && !options_.workers_ready()) {
        return Error(503, "workers_not_ready", "the daemon's workers are not connected and waiting yet");
      }
      return Json(200, R"({"status":"ready"})");
    } catch (const std::exception&) {
      auto unreachable = Error(503, "database_unreachable", "the database cannot be reached");
      unreachable.headers.emplace_back("Retry-After", "1");
      return unreachable;
    }
  }

  void Log(const httplib::Request& req, const httplib::Response& res) {
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                              CurrentRequestStart()).count();
    std::string error;
    if (res.status >= 400 && res.body.size() < 4096) {
      const auto body = json::parse(res.body, nullptr, false);
      if (body.is_object() && body.contains("error") && body["error"].is_string()) error = body["error"];
    }
    const auto level = res.status >= 500   ? spdlog::level::warn
                       : res.status >= 400 ? spdlog::level::info
                                           : spdlog::level::debug;
    logger_->log(level, "{} {} -> {}{}{} {:.1f} ms request {}", Printable(req.method, 16),
                 Printable(req.path, 200), res.status, error.empty() ? "" : " ", error, ms,
                 res.get_header_value(kRequestIdHeader));
  }

  std::string OpenApi() const {
    json paths = json::object();
    for (const auto& compiled : routes_) {
      const auto& route = compiled->route;
      json operation = {{"summary", route.summary},
                        {"x-cogo-access", AccessName(route.access)},
                        {"responses", {{"default", {{"description", "JSON; errors are {error, message}"}}}}}};
      if (route.access != Access::kPublic) operation["security"] = json::array({{{"bearer", json::array()}}});
      for (const auto& param : compiled->pattern.params) {
        operation["parameters"].push_back(
            {{"name", param}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}});
      }
      std::string method = route.method;
      for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      paths[route.pattern][method] = operation;
    }
    return json{{"openapi", "3.0.3"},
                {"info", {{"title", name_}, {"version", "1"}}},
                {"paths", paths},
                {"components",
                 {{"securitySchemes",
                   {{"bearer", {{"type", "http"}, {"scheme", "bearer"}, {"bearerFormat", "JWT"}}}}}}}}
        .dump();
  }

  inline static const prometheus::Histogram::BucketBoundaries kDurationBuckets = {0.001, 0.005, 0.01, 0.05,
                                                                                  0.1,   0.5,   1,    5};
  std::string name_;
  JsonServiceOptions options_;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Family<prometheus::Histogram>* durations_ = nullptr;
  std::shared_ptr<spdlog::logger> logger_;
  db::ConnectionPool pool_;
  std::vector<db::Migration> migrations_;
  std::string migrations_error_;
  std::vector<std::unique_ptr<CompiledRoute>> routes_;  // stable addresses: handlers hold them
  std::string openapi_;
  GuardedServer server_;
  std::thread thread_;
  std::atomic<bool> draining_ = false;
  bool started_ = false;
  int port_ = 0;
};

JsonService::JsonService(std::string name, JsonServiceOptions options, std::shared_ptr<spdlog::logger> logger)
    : impl_(std::make_unique<Impl>(std::move(name), std::move(options), std::move(logger))) {}
JsonService::~JsonService() = default;
void JsonService::Add(std::vector<Route> routes) { impl_->Add(std::move(routes)); }
void JsonService::Start() { impl_->Start(); }
void JsonService::Drain() { impl_->Drain(); }
int JsonService::port() const { return impl_->port(); }
db::ConnectionPool& JsonService::pool() { return impl_->pool(); }

void JsonService::Read(const Request& caller, const std::function<void(pqxx::read_transaction&)>& fn) {
  // Both settings are transaction-local: the pooled connection is unscoped again afterwards. The
  // role's name is configurable (sql/023); cogo_role raises rather than return NULL.
  static constexpr const char* kScopeToTenant =
      "SELECT set_config('role', cogo_role('tenant'), true), set_config('cogo.tenant', $1, true)";
  const auto tenant = caller.TenantScope();
  impl_->pool().With([&](pqxx::connection& conn) {
    pqxx::read_transaction txn(conn);
    if (tenant) txn.exec_params1(kScopeToTenant, *tenant);
    fn(txn);
  });
}

}  // namespace cogo::http
