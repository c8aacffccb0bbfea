#include "cogo/runtime/periodic.h"

#include <algorithm>

#include "cogo/base/sleep.h"
#include "cogo/db/reconnect.h"

namespace cogo::runtime {

PeriodicTask::PeriodicTask(PeriodicOptions options, PeriodicBody body,
                           std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), body_(std::move(body)), logger_(std::move(logger)) {}

PeriodicTask::~PeriodicTask() { Drain(); }

void PeriodicTask::Start() {
  thread_ = std::jthread([this](std::stop_token stop) { Loop(stop); });
}

void PeriodicTask::Drain() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

std::string PeriodicTask::FatalError() const {
  std::lock_guard lock(mu_);
  return fatal_error_;
}

void PeriodicTask::Loop(std::stop_token stop) {
  const db::Connector connector(options_.database_url, "cogo-" + options_.name,
                                {.first_pause = std::min(std::chrono::milliseconds(100), options_.max_backoff),
                                 .max_pause = options_.max_backoff});
  auto fatal = db::RunConnected(connector, stop, *logger_, options_.name, db::InDoubt::fatal,
                                [&](pqxx::connection& conn, bool /*reconnected*/) {
    while (!stop.stop_requested()) {
      const auto started = std::chrono::steady_clock::now();
      body_(conn, stop);
      ++runs_;
      const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - started);
      if (!base::SleepFor(stop, std::max(std::chrono::milliseconds(0), options_.interval - elapsed))) return;
    }
  });
  if (fatal.empty()) return;
  std::lock_guard lock(mu_);
  if (fatal_error_.empty()) fatal_error_ = std::move(fatal);
}

}  // namespace cogo::runtime
