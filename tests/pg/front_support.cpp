#include "front_support.h"

#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "pg_fixture.h"

namespace cogo::testing {

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string SourcePath(const std::string& relative) {
  return std::string(COGO_SOURCE_DIR) + "/" + relative;
}

namespace {

HttpResult ToResult(const httplib::Result& r) {
  HttpResult out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  for (const auto& [k, v] : r->headers) out.headers[k] = v;
  return out;
}

httplib::Headers ToHeaders(const std::map<std::string, std::string>& headers) {
  httplib::Headers out;
  for (const auto& [k, v] : headers) out.emplace(k, v);
  return out;
}

}  // namespace

HttpResult HttpPost(int port, const std::string& path, const std::string& body,
                    const std::map<std::string, std::string>& headers) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  std::string content_type = "application/json";
  auto h = headers;
  if (auto it = h.find("Content-Type"); it != h.end()) {
    content_type = it->second;
    h.erase(it);
  }
  return ToResult(client.Post(path.c_str(), ToHeaders(h), body, content_type.c_str()));
}

HttpResult HttpGet(int port, const std::string& path, const std::map<std::string, std::string>& headers) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  return ToResult(client.Get(path.c_str(), ToHeaders(headers)));
}

Daemon::Daemon(const std::string& binary, std::vector<std::string> args, int port, const std::string& log)
    : port_(port), log_(log) {
  args.push_back("--port");
  args.push_back(std::to_string(port));
  child_ = std::make_unique<ChildProcess>(binary, args, log);
  const bool up = WaitFor([&] { return HttpGet(port, "/healthz").status == 200 || child_->Wait(std::chrono::milliseconds(0)).has_value(); },
                          std::chrono::seconds(30));
  if (!up || HttpGet(port, "/healthz").status != 200) {
    throw std::runtime_error(binary + " did not come up; see " + log);
  }
}

Daemon::~Daemon() {
  child_->Signal(SIGTERM);
  (void)child_->Wait(std::chrono::seconds(30));
}

WorkerDaemon::WorkerDaemon(const std::string& binary, std::vector<std::string> args, const std::string& log)
    : child_(std::make_unique<ChildProcess>(binary, args, log)) {}

WorkerDaemon::~WorkerDaemon() {
  child_->Signal(SIGTERM);
  (void)child_->Wait(std::chrono::seconds(30));
}

std::unique_ptr<WorkerDaemon> StartExecutor(const std::string& log) {
  setenv("COGO_POLICY", SourcePath("config/policy.example.json").c_str(), 1);
  return std::make_unique<WorkerDaemon>("cogo-executor-dispatcher",
                                        std::vector<std::string>{"--poll-ms", "100"}, log);
}

void ExportEdgeSecrets() {
  setenv("COGO_JWT_SECRET", kTestJwtSecret, 1);
  setenv("COGO_PUBLISHABLE_KEY", kTestPublishableKey, 1);
}

}  // namespace cogo::testing
