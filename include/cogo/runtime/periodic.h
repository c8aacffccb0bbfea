// PeriodicTask: a Component that runs a body on its own database connection every `interval`
// (first run at Start) until drained. A lost connection or a rollback costs a reconnect with
// backoff (db::RunConnected); any other failure, and a commit in doubt, is fatal: the first one
// is recorded, nothing more is scheduled, and FatalError() reports it (RunDaemon then exits 1).
// Thread-safe: Start/Drain from one owner thread; FatalError/runs from any thread. The body
// runs on the task's one thread and must return promptly once its stop token is requested.
#pragma once


#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include <pqxx/connection>
#include <spdlog/logger.h>

#include "cogo/runtime/daemon.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace cogo::runtime {

struct PeriodicOptions {
  std::string name;                              // log tag and application_name suffix
  std::string database_url;
  std::chrono::milliseconds interval{5000};       // from the start of one run to the next
  std::chrono::milliseconds max_backoff{10000};   // reconnect backoff doubles up to this
  prometheus::Registry* registry = nullptr;  // cogo_periodic_* labelled task=name when set (the daemon's)
};

using PeriodicBody = std::function<void(pqxx::connection&, std::stop_token)>;

class PeriodicTask final : public Component {
 public:
  PeriodicTask(PeriodicOptions options, PeriodicBody body, std::shared_ptr<spdlog::logger> logger);
  ~PeriodicTask() override;
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  void Start() override;
  void Drain() override;  // stops after the current run; returns when the thread ended
  [[nodiscard]] std::string FatalError() const override;

  [[nodiscard]] uint64_t runs() const { return runs_.load(); }  // completed runs

 private:
  void Loop(std::stop_token stop);

  const PeriodicOptions options_;
  const PeriodicBody body_;
  const std::shared_ptr<spdlog::logger> logger_;
  std::atomic<uint64_t> runs_{0};
  prometheus::Counter* runs_metric_ = nullptr;     // set with options.registry
  prometheus::Histogram* run_seconds_ = nullptr;
  prometheus::Gauge* last_run_ = nullptr;
  mutable std::mutex mu_;
  std::string fatal_error_;
  std::jthread thread_;
};


}  // namespace cogo::runtime
