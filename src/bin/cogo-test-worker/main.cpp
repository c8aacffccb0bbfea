// cogo-test-worker: a worker daemon with a configurable test handler, for end-to-end and
// failure tests and for trying the bus by hand; --fail-version makes one agent version worse. Each handler call can be appended to a record
// file ("<id> <attempt>" per line, written before the handler's work) so tests count runs.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <thread>

#include "cogo/http/health_listener.h"
#include "cogo/runtime/worker_component.h"

namespace {

struct TestHandlerOptions {
  int sleep_ms = 0;
  std::string record;       // file to append handler calls to
  std::string outcome = "complete";  // complete | retry | fail
  std::string fail_version;  // messages whose assignment names this version fail permanently
};

cogo::runtime::HandlerResult Handle(const TestHandlerOptions& o, int record_fd,
                                    cogo::runtime::HandlerContext& ctx) {
  const auto& lease = ctx.message.lease;
  if (record_fd >= 0) {
    const std::string line = std::to_string(lease.message_id) + " " + std::to_string(lease.attempt) + "\n";
    if (write(record_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw std::runtime_error("could not append to the record file");
    }
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.sleep_ms);
  while (std::chrono::steady_clock::now() < until) {
    if (ctx.stop.stop_requested()) return cogo::runtime::HandlerResult::Retry("stopped");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!o.fail_version.empty() && ctx.assignment != nullptr && ctx.assignment->version == o.fail_version) {
    return cogo::runtime::HandlerResult::Fail("test_handler", "version " + o.fail_version + " fails");
  }
  if (o.outcome == "retry") return cogo::runtime::HandlerResult::Retry("test_handler", "transient");
  if (o.outcome == "fail") return cogo::runtime::HandlerResult::Fail("test_handler", "permanent");
  return cogo::runtime::HandlerResult::Complete(R"({"echo":)" + ctx.message.payload_json + "}",
                                                "handled by cogo-test-worker");
}

}  // namespace

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  TestHandlerOptions handler;
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener(cogo::runtime::WorkerDaemon({
      "cogo-test-worker", "A worker with a test handler (sleep, record, outcome)", worker, true,
      [&](CLI::App& app) {
        app.add_option("--sleep-ms", handler.sleep_ms, "time each message takes");
        app.add_option("--record", handler.record, "append '<id> <attempt>' per handler call");
        app.add_option("--outcome", handler.outcome)->check(CLI::IsMember({"complete", "retry", "fail"}));
        app.add_option("--fail-version", handler.fail_version, "fail messages whose __assignment names this version (a bad canary)");
      },
      [&](cogo::runtime::DaemonContext&) -> cogo::runtime::Handler {
        int fd = -1;
        if (!handler.record.empty()) {
          fd = open(handler.record.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
          if (fd < 0) throw std::runtime_error("cannot open record file " + handler.record);
        }
        return [handler, fd](auto& c) { return Handle(handler, fd, c); };
      }})));
}
