// Retention: deletes final messages (done, failed, cancelled; dead letters after a longer
// age), audit events and usage rows past their ages, in bounded batches (one short
// transaction each, a pause between batches). Rows that are not final are never touched:
// the status is checked on the locked row. A pass uses the caller's connection, one thread
// at a time; the component runs passes on an interval.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stop_token>

#include <pqxx/connection>

#include "cogo/runtime/daemon.h"

namespace CLI {
class App;
}

namespace cogo::ops {

struct RetentionOptions {
  std::chrono::milliseconds finished_max_age = std::chrono::hours(24 * 7);  // done/failed/cancelled
  std::chrono::milliseconds dead_max_age = std::chrono::hours(24 * 30);     // dead letters
  std::chrono::milliseconds events_max_age = std::chrono::hours(24 * 30);   // bus_events
  std::chrono::milliseconds usage_max_age = std::chrono::hours(24 * 400);   // message_usage
  int batch_size = 1000;                    // rows per delete statement
  std::chrono::milliseconds pause{50};      // between batches
  std::chrono::milliseconds interval = std::chrono::minutes(10);  // daemon: between passes
};

struct RetentionCounts {
  int64_t finished = 0;
  int64_t dead = 0;
  int64_t events = 0;
  int64_t usage = 0;

  [[nodiscard]] int64_t total() const { return finished + dead + events + usage; }
};

// Deletes what is past its age; returns what it deleted. Stops between batches on request.
[[nodiscard]] RetentionCounts Prune(pqxx::connection& conn, const RetentionOptions& options,
                                    std::stop_token stop = {});

// What Prune would delete now (a dry run), without deleting anything.
[[nodiscard]] RetentionCounts CountPrunable(pqxx::connection& conn, const RetentionOptions& options);

// --finished-max-age, --dead-max-age, --events-max-age, --usage-max-age, --batch-size,
// --pause and, when `with_interval`, --interval (durations: "7d", "90s", "250ms").
void AddRetentionOptions(CLI::App& app, RetentionOptions& options, bool with_interval);

// The daemon component (a runtime::PeriodicTask); logs the counts of each pass.
[[nodiscard]] std::unique_ptr<runtime::Component> MakeRetentionComponent(
    RetentionOptions options, runtime::DaemonContext& context);

}  // namespace cogo::ops
