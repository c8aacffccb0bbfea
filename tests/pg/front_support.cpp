#include "front_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "pg_fixture.h"

namespace cogo::testing {

std::string SourcePath(const std::string& relative) {
  return std::string(COGO_SOURCE_DIR) + "/" + relative;
}

std::string ReadFile(const std::string& path) {
  std::ostringstream text;
  text << std::ifstream(path).rdbuf();
  return text.str();
}

namespace {

// The port of the first URL matching `url` (port in group 1) a daemon logged after `offset` of
// its log, where it started writing (daemons started one after another may share a log).
int LoggedPort(const std::string& log, std::streamoff offset, const std::regex& url) {
  std::ifstream in(log);
  in.seekg(offset);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::smatch match;
  return std::regex_search(text, match, url) ? std::stoi(match[1]) : 0;
}

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
  client.set_read_timeout(30, 0);  // longer than any server-side wait, so a slow answer shows its own status
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
  client.set_read_timeout(30, 0);  // longer than any server-side wait, so a slow answer shows its own status
  return ToResult(client.Get(path.c_str(), ToHeaders(headers)));
}

void ExpectJsonError(const HttpResult& r, int status, const std::string& error, const std::string& name) {
  EXPECT_EQ(r.status, status) << name << ": " << r.body;
  const auto body = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << name << ": " << r.body;
  EXPECT_EQ(body.value("error", ""), error) << name;
  EXPECT_FALSE(body.value("message", "").empty()) << name;
  EXPECT_EQ(r.body.find(kTestJwtSecret), std::string::npos) << name;
}

Daemon::Daemon(const std::string& binary, std::vector<std::string> args, const std::string& log)
    : log_(log) {
  const std::streamoff offset = LogSize(log);
  args.push_back("--port");
  args.push_back("0");
  child_ = std::make_unique<ChildProcess>(binary, args, log);
  const bool up = WaitFor([&] {
    if (child_->Wait(std::chrono::milliseconds(0)).has_value()) return true;  // exited: fail below
    // The service's own line: other URLs may come first (a model provider's base URL).
    static const std::regex kListening(R"(listening on http://[^:/\s]+:([0-9]+))");
    if (port_ == 0) port_ = LoggedPort(log, offset, kListening);
    return port_ != 0 && HttpGet(port_, "/healthz").status == 200;
  }, std::chrono::seconds(30));
  if (!up || port_ == 0 || HttpGet(port_, "/healthz").status != 200) {
    throw std::runtime_error(binary + " did not come up; see " + log);
  }
}

Daemon::~Daemon() {
  child_->Signal(SIGTERM);
  (void)child_->Wait(std::chrono::seconds(30));
}

std::streamoff LogSize(const std::string& log) {
  std::error_code no_log_yet;
  const auto size = std::filesystem::file_size(log, no_log_yet);
  return no_log_yet ? 0 : static_cast<std::streamoff>(size);
}

int LoggedMetricsPort(const std::string& log, std::streamoff offset) {
  static const std::regex kMetrics(R"(metrics http://[^:/\s]+:([0-9]+)/metrics)");
  return LoggedPort(log, offset, kMetrics);
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
