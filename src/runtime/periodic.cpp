#include "cogo/runtime/periodic.h"

#include <algorithm>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "cogo/base/sleep.h"
#include "cogo/db/reconnect.h"

namespace cogo::runtime {

PeriodicTask::PeriodicTask(PeriodicOptions options, PeriodicBody body,
                           std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), body_(std::move(body)), logger_(std::move(logger)) {
  if (!options_.registry) return;
  const prometheus::Labels task{{"task", options_.name}};
  runs_metric_ = &prometheus::BuildCounter()
                      .Name("cogo_periodic_runs_total")
                      .Help("Completed runs of a periodic task (reclaimer, retention, alerts, ...)")
                      .Register(*options_.registry)
                      .Add(task);
  run_seconds_ = &prometheus::BuildHistogram()
                      .Name("cogo_periodic_run_duration_seconds")
                      .Help("How long one run of a periodic task took")
                      .Register(*options_.registry)
                      .Add(task, prometheus::Histogram::BucketBoundaries{0.001, 0.01, 0.1, 1, 10, 60});
  last_run_ = &prometheus::BuildGauge()
                   .Name("cogo_periodic_last_run_timestamp_seconds")
                   .Help("When a periodic task last completed a run (Unix time): alert when it stops moving")
                   .Register(*options_.registry)
                   .Add(task);
}

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
      if (runs_metric_) {
        runs_metric_->Increment();
        run_seconds_->Observe(std::chrono::duration<double>(elapsed).count());
        last_run_->Set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
      }
      if (!base::SleepFor(stop, std::max(std::chrono::milliseconds(0), options_.interval - elapsed))) return;
    }
  });
  if (fatal.empty()) return;
  std::lock_guard lock(mu_);
  if (fatal_error_.empty()) fatal_error_ = std::move(fatal);
}

}  // namespace cogo::runtime
