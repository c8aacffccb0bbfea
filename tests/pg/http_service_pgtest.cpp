// http::JsonService in process, over real HTTP and a real PostgreSQL: access levels and tenant
// checks, the exception wrapper, JSON errors and security headers on every response, request
// ids in the log, body and header limits, slow clients (slowloris) that must not starve the
// thread pool, idle keep-alive connections that give their thread back (and are closed after the
// idle timeout), /readyz while draining, and the generated OpenAPI document.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "cogo/auth/jwt.h"
#include "cogo/http/json_service.h"
#include "front_support.h"
#include "log_sink.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::map<std::string, std::string> As(auth::Role role, const std::string& tenant = "") {
  return {{"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, auth::ToString(role), tenant)}};
}

class HttpServiceTest : public BusTest {
 protected:
  std::unique_ptr<http::JsonService> Start(http::JsonServiceOptions options = {}) {
    if (options.database_url.empty()) options.database_url = DatabaseUrl();
    options.authenticate = http::BearerJwt(kTestJwtSecret);
    auto service = std::make_unique<http::JsonService>("test-service", options, MakeTestLogger("http", sink_));
    service->Add({
        {"GET", "/api/things/{id}", http::Access::kAnyToken, "one thing",
         [&db = *service](const http::Request& req) {
           // No tenant filter on purpose: Read scopes the session (row-level security).
           int64_t messages = 0;
           db.Read(req, [&](pqxx::read_transaction& txn) {
             messages = txn.exec1("SELECT count(*) FROM agent_messages")[0].as<int64_t>();
           });
           return http::Json(200, json{{"id", req.Param("id")}, {"messages", messages},
                                       {"tenant", req.TenantScope().value_or("*")}}.dump());
         }},
        {"POST", "/api/things", http::Access::kAnyToken, "a thing for a tenant",
         [](const http::Request& req) {
           const auto body = json::parse(req.body());
           if (auto refused = http::CheckTenant(req, body.at("tenant").get<std::string>())) return *refused;
           return http::Json(201, R"({"created":true})");
         }},
        {"GET", "/api/admin", http::Access::kServiceRole, "admin only",
         [](const http::Request&) { return http::Json(200, "{}"); }},
        {"POST", "/api/echo", http::Access::kPublic, "body size",
         [](const http::Request& req) { return http::Json(200, json{{"bytes", req.body().size()}}.dump()); }},
        {"GET", "/api/boom", http::Access::kPublic, "always throws",
         [](const http::Request&) -> http::Response { throw std::runtime_error("detail-for-the-log-only"); }},
    });
    service->Start();
    return service;
  }

  std::shared_ptr<LogSink> sink_ = std::make_shared<LogSink>();
};

TEST_F(HttpServiceTest, AccessLevelsAndTenantChecks) {
  const auto service = Start();
  ASSERT_GT(service->port(), 0);
  const int port = service->port();
  ExpectJsonError(HttpGet(port, "/api/things/7"), 401, "missing_token", "no token");
  ExpectJsonError(HttpGet(port, "/api/admin", As(auth::Role::kAuthenticated, "acme")), 403,
                  "service_role_required", "tenant token on an admin route");
  EXPECT_EQ(HttpGet(port, "/api/admin", As(auth::Role::kServiceRole)).status, 200);

  for (const char* tenant : {"acme", "globex", "globex"}) {
    auto message = Message();
    message.tenant = tenant;
    (void)bus_->Publish(message);
  }
  const auto mine = HttpGet(port, "/api/things/7", As(auth::Role::kAuthenticated, "acme"));
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(json::parse(mine.body), json::parse(R"({"id":"7","messages":1,"tenant":"acme"})"));
  const auto all = json::parse(HttpGet(port, "/api/things/7", As(auth::Role::kServiceRole)).body);
  EXPECT_EQ(all["tenant"], "*");
  EXPECT_EQ(all["messages"], 3);

  EXPECT_EQ(HttpPost(port, "/api/things", R"({"tenant":"acme"})", As(auth::Role::kAuthenticated, "acme")).status, 201);
  ExpectJsonError(HttpPost(port, "/api/things", R"({"tenant":"globex"})", As(auth::Role::kAuthenticated, "acme")),
                  403, "tenant_mismatch", "a tenant token naming another tenant");
  EXPECT_EQ(HttpPost(port, "/api/things", R"({"tenant":"globex"})", As(auth::Role::kServiceRole)).status, 201);
}

TEST_F(HttpServiceTest, EveryResponseHasSecurityHeadersARequestIdAndJsonErrors) {
  const auto service = Start();
  const int port = service->port();
  struct Case {
    const char* name;
    HttpResult result;
    int status;
  };
  const std::vector<Case> cases = {
      {"ok", HttpGet(port, "/healthz"), 200},
      {"unknown path", HttpGet(port, "/nowhere"), 404},
      {"no token", HttpGet(port, "/api/things/1"), 401},
      {"handler threw", HttpGet(port, "/api/boom"), 500},
      {"openapi", HttpGet(port, "/openapi.json"), 200},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.result.status, c.status) << c.name;
    const auto& h = c.result.headers;
    EXPECT_EQ(h.count("X-Content-Type-Options") ? h.at("X-Content-Type-Options") : "", "nosniff") << c.name;
    EXPECT_EQ(h.count("Cache-Control") ? h.at("Cache-Control") : "", "no-store") << c.name;
    EXPECT_EQ(h.count("X-Frame-Options") ? h.at("X-Frame-Options") : "", "DENY") << c.name;
    EXPECT_EQ(h.count("Content-Security-Policy"), 1u) << c.name;
    EXPECT_EQ(h.count("Content-Type") ? h.at("Content-Type") : "", "application/json") << c.name;
    ASSERT_EQ(h.count("X-Request-Id"), 1u) << c.name;
    EXPECT_EQ(h.at("X-Request-Id").size(), 16u) << c.name;
    if (c.status >= 400) ExpectJsonError(c.result, c.status, json::parse(c.result.body).value("error", "?"), c.name);
  }
  const auto boom = HttpGet(port, "/api/boom", {{"X-Request-Id", "trace-42"}});
  ExpectJsonError(boom, 500, "internal", "handler threw");
  EXPECT_EQ(boom.headers.count("Retry-After"), 0u);  // a bug: retrying will not help
  EXPECT_EQ(boom.headers.at("X-Request-Id"), "trace-42");
  EXPECT_EQ(boom.body.find("detail-for-the-log-only"), std::string::npos);
  // The detail goes to the log with the request id: the failure line and the request line
  // (written just after the response is sent, hence the wait).
  EXPECT_TRUE(WaitFor([&] { return sink_->Count("request trace-42") == 2; }, 2s)) << sink_->Text();
  EXPECT_EQ(sink_->Count("warning GET /api/boom -> 500 internal"), 2u);  // both boom requests
  EXPECT_EQ(sink_->Count("error GET /api/boom failed (request trace-42, other): detail-for-the-log-only"), 1u);
  const auto forged = HttpGet(port, "/healthz", {{"X-Request-Id", "evil id\tinjected"}});
  EXPECT_EQ(forged.headers.at("X-Request-Id").size(), 16u);
  EXPECT_TRUE(WaitFor([&] { return sink_->Count("request " + forged.headers.at("X-Request-Id")) == 1; }, 2s));
  EXPECT_EQ(sink_->Count("injected"), 0u);
}

TEST_F(HttpServiceTest, BodyAndHeaderLimitsAnswer413And431) {
  http::JsonServiceOptions options;
  options.max_body_bytes = 1024;
  options.max_header_count = 20;
  options.max_header_bytes = 4096;
  const auto service = Start(options);
  const int port = service->port();
  EXPECT_EQ(json::parse(HttpPost(port, "/api/echo", std::string(1000, ' ') + "{}").body)["bytes"], 1002);
  ExpectJsonError(HttpPost(port, "/api/echo", std::string(4096, ' ')), 413, "body_too_large", "oversize");

  std::map<std::string, std::string> many;
  for (int i = 0; i < 30; ++i) many["X-Filler-" + std::to_string(i)] = "1";
  ExpectJsonError(HttpGet(port, "/healthz", many), 431, "headers_too_large", "too many headers");
  ExpectJsonError(HttpGet(port, "/healthz", {{"X-Big", std::string(6000, 'a')}}), 431, "headers_too_large",
                  "header block too large");
  EXPECT_EQ(HttpGet(port, "/healthz").status, 200);
}

// A client that sends a request line and then a header byte every `gap`, for as long as the
// connection stays open or until `stop`.
void Dribble(int port, const std::atomic<bool>& stop, std::chrono::milliseconds gap) {
  while (!stop) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      return;
    }
    const std::string start = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    bool open = send(fd, start.data(), start.size(), MSG_NOSIGNAL) > 0;
    while (open && !stop) {
      std::this_thread::sleep_for(gap);
      open = send(fd, "X", 1, MSG_NOSIGNAL) == 1;  // never ends the header line
    }
    close(fd);  // the server cut us off: come back, as an attacker would
  }
}

TEST_F(HttpServiceTest, SlowClientsDoNotStarveTheThreadPool) {
  http::JsonServiceOptions options;
  options.threads = 2;
  options.request_timeout_ms = 1000;
  options.read_timeout_ms = 500;
  const auto service = Start(options);
  const int port = service->port();
  constexpr int kSlowClients = 6;
  std::atomic<bool> stop = false;
  std::vector<std::thread> slow;
  for (int i = 0; i < kSlowClients; ++i) slow.emplace_back(Dribble, port, std::cref(stop), 100ms);
  std::this_thread::sleep_for(300ms);  // every pool thread is now held by a slow client

  // Each slow connection holds a thread for at most request_timeout, so a normal request waits
  // at most (slow clients / threads + 1) request timeouts; without the deadline it waits forever.
  const auto bound = std::chrono::milliseconds(options.request_timeout_ms * (kSlowClients / options.threads + 1)) + 1s;
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(bound) + 5s);
  const auto started = std::chrono::steady_clock::now();
  const auto result = client.Get("/healthz");
  const auto waited = std::chrono::steady_clock::now() - started;
  stop = true;
  for (auto& t : slow) t.join();
  ASSERT_TRUE(result) << "no answer";
  EXPECT_EQ(result->status, 200);
  EXPECT_LT(waited, bound) << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms";
  EXPECT_GE(sink_->Count("-> 408 request_timeout"), 1u) << sink_->Text();
}

// One keep-alive connection by hand: requests go out on it, and it reads their responses.
class KeepAliveConnection {
 public:
  explicit KeepAliveConnection(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) throw std::runtime_error("connect");
  }
  ~KeepAliveConnection() { close(fd_); }
  KeepAliveConnection(const KeepAliveConnection&) = delete;
  KeepAliveConnection& operator=(const KeepAliveConnection&) = delete;

  // GET `path` and the response's status line, or "" when the server closed the connection or
  // nothing came within `wait`.
  std::string Get(const std::string& path, std::chrono::milliseconds wait = 10s) {
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
    if (send(fd_, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return "";
    std::string in;
    size_t header_end = std::string::npos;
    size_t length = 0;
    while (header_end == std::string::npos || in.size() < header_end + 4 + length) {
      if (!Read(in, wait)) return "";
      if (header_end == std::string::npos && (header_end = in.find("\r\n\r\n")) != std::string::npos) {
        const auto at = in.find("Content-Length: ");
        if (at != std::string::npos && at < header_end) length = std::stoul(in.substr(at + 16));
      }
    }
    return in.substr(0, in.find("\r\n"));
  }

  // True when the server closes the connection within `wait` (and sends nothing first).
  bool ClosedWithin(std::chrono::milliseconds wait) {
    std::string in;
    return !Read(in, wait) && in.empty();
  }

 private:
  bool Read(std::string& in, std::chrono::milliseconds wait) {
    pollfd fd{fd_, POLLIN, 0};
    if (poll(&fd, 1, static_cast<int>(wait.count())) != 1) return false;
    char buffer[4096];
    const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n <= 0) return false;
    in.append(buffer, static_cast<size_t>(n));
    return true;
  }

  int fd_;
};

TEST_F(HttpServiceTest, IdleKeepAliveConnectionsGiveTheirThreadToWaitingOnes) {
  http::JsonServiceOptions options;
  options.threads = 1;
  options.idle_timeout_ms = 60000;
  const auto service = Start(options);
  const int port = service->port();
  KeepAliveConnection idle(port);
  ASSERT_EQ(idle.Get("/healthz"), "HTTP/1.1 200 OK");

  // The only thread would wait a minute for the idle connection's next request; another
  // connection is answered meanwhile.
  KeepAliveConnection other(port);
  EXPECT_EQ(other.Get("/healthz", 10s), "HTTP/1.1 200 OK");
  // The idle connection was parked, not closed: its next request comes back to the pool.
  EXPECT_EQ(idle.Get("/healthz"), "HTTP/1.1 200 OK");
  EXPECT_EQ(other.Get("/healthz", 10s), "HTTP/1.1 200 OK");
}

TEST_F(HttpServiceTest, AParkedConnectionIsClosedAfterTheIdleTimeout) {
  http::JsonServiceOptions options;
  options.threads = 1;
  options.idle_timeout_ms = 1000;
  const auto service = Start(options);
  const int port = service->port();
  KeepAliveConnection idle(port);
  ASSERT_EQ(idle.Get("/healthz"), "HTTP/1.1 200 OK");
  KeepAliveConnection other(port);
  ASSERT_EQ(other.Get("/healthz", 10s), "HTTP/1.1 200 OK");  // parks `idle`, or finds it closed
  EXPECT_TRUE(idle.ClosedWithin(10s));
  EXPECT_TRUE(other.ClosedWithin(10s));
  // Closed connections cost nothing: a new one is served.
  KeepAliveConnection next(port);
  EXPECT_EQ(next.Get("/healthz"), "HTTP/1.1 200 OK");
}

TEST_F(HttpServiceTest, ReadyzIs503WhileDrainingAndTheListenerThenCloses) {
  http::JsonServiceOptions options;
  options.drain_delay_ms = 1500;
  auto service = Start(options);
  const int port = service->port();
  const auto ready = HttpGet(port, "/readyz");
  ASSERT_EQ(ready.status, 200) << ready.body;
  std::thread drain([&] { service->Drain(); });
  EXPECT_TRUE(WaitFor([&] { return HttpGet(port, "/readyz").status == 503; }, 1s));
  ExpectJsonError(HttpGet(port, "/readyz"), 503, "draining", "draining");
  EXPECT_EQ(HttpGet(port, "/healthz").status, 200);  // still serving while the balancer notices
  drain.join();
  EXPECT_EQ(HttpGet(port, "/healthz").status, 0);
}

TEST_F(HttpServiceTest, AnUnreachableDatabaseIs503WithRetryAfter) {
  http::JsonServiceOptions options;
  options.database_url = "postgresql://postgres@127.0.0.1:1/cogo";  // nothing listens on port 1
  const auto service = Start(options);
  const auto ready = HttpGet(service->port(), "/readyz");
  ExpectJsonError(ready, 503, "database_unreachable", "readyz");
  EXPECT_EQ(ready.headers.at("Retry-After"), "1");
  const auto read = HttpGet(service->port(), "/api/things/1", As(auth::Role::kServiceRole));
  ExpectJsonError(read, 503, "unavailable", "read");  // after the pool's patience
  EXPECT_EQ(read.headers.at("Retry-After"), "1");
  EXPECT_EQ(HttpGet(service->port(), "/healthz").status, 200);  // alive, just not ready
}

TEST_F(HttpServiceTest, OpenApiDocumentListsTheRouteTable) {
  const auto service = Start();
  const auto r = HttpGet(service->port(), "/openapi.json");
  ASSERT_EQ(r.status, 200);
  const auto doc = json::parse(r.body);
  EXPECT_EQ(doc["openapi"], "3.0.3");
  const auto& thing = doc["paths"]["/api/things/{id}"]["get"];
  EXPECT_EQ(thing["x-cogo-access"], "any_token");
  EXPECT_EQ(thing["parameters"][0]["name"], "id");
  EXPECT_FALSE(thing["security"].empty());
  EXPECT_EQ(doc["paths"]["/api/admin"]["get"]["x-cogo-access"], "service_role");
  EXPECT_FALSE(doc["paths"]["/healthz"]["get"].contains("security"));
}

TEST_F(HttpServiceTest, RoutesAreCheckedWhenAdded) {
  http::JsonServiceOptions options;
  options.database_url = DatabaseUrl();
  http::JsonService open("no-auth", options, MakeTestLogger("http", sink_));
  auto ok = [](const http::Request&) { return http::Json(200, "{}"); };
  EXPECT_THROW(open.Add({{"GET", "/x", http::Access::kAnyToken, "", ok}}), std::invalid_argument);
  EXPECT_THROW(open.Add({{"GET", "x/{id", http::Access::kPublic, "", ok}}), std::invalid_argument);
  EXPECT_THROW(open.Add({{"GET", "/healthz", http::Access::kPublic, "", ok}}), std::invalid_argument);
  EXPECT_THROW(open.Add({{"TRACE", "/y", http::Access::kPublic, "", ok}}), std::invalid_argument);
  EXPECT_THROW(http::BearerJwt(""), std::invalid_argument);
}

}  // namespace
}  // namespace cogo::testing
