#include "cogo/runtime/periodic.h"

#include <condition_variable>

#include "cogo/db/connection.h"

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
  std::unique_ptr<pqxx::connection> conn;
  auto backoff = std::chrono::milliseconds(100);
  while (!stop.stop_requested()) {
    const auto started = std::chrono::steady_clock::now();
    try {
      if (!conn) conn = db::Connect(options_.database_url, "cogo-" + options_.name);
      body_(*conn, stop);
      ++runs_;
      backoff = std::chrono::milliseconds(100);
    } catch (const std::exception& e) {
      if (!db::IsTransient(e)) {
        logger_->error("{} stopped: {}", options_.name, e.what());
        std::lock_guard lock(mu_);
        if (fatal_error_.empty()) fatal_error_ = options_.name + ": " + e.what();
        return;
      }
      conn.reset();
      logger_->warn("{} lost the database ({}); retrying in {} ms", options_.name, e.what(),
                    backoff.count());
      if (!SleepFor(stop, backoff)) return;
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    if (!SleepFor(stop, std::max(std::chrono::milliseconds(0), options_.interval - elapsed))) return;
  }
}

}  // namespace cogo::runtime
