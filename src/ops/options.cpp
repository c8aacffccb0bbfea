// Command-line options of the ops daemons, shared with the `cogo` CLI, and the duration flag.
#include <CLI/CLI.hpp>

#include "cogo/ops/duration.h"
#include "cogo/ops/reclaimer.h"
#include "cogo/ops/retention.h"

namespace cogo::ops {

void AddDurationOption(CLI::App& app, const std::string& name, std::chrono::milliseconds& value,
                       const std::string& help, bool zero_allowed) {
  app.add_option_function<std::string>(
         name,
         [&value, name, zero_allowed](const std::string& text) {
           auto parsed = ParseDuration(text);
           if (!parsed || parsed->count() < (zero_allowed ? 0 : 1)) {
             throw CLI::ValidationError(name, std::string("expected a ") + (zero_allowed ? "" : "positive ") +
                                                  "duration like 7d, 36h, 90s or 250ms, got " + text);
           }
           value = *parsed;
         },
         help + " (default " + FormatDuration(value) + ")");
}

void AddReclaimerOptions(CLI::App& app, ReclaimerOptions& o) {
  app.add_option("--batch-size", o.batch_size, "rows per statement")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  AddDurationOption(app, "--interval", o.interval, "time between passes");
  app.add_option("--expire-ttl", o.expire_ttl, "end queued messages past their assignment TTL")
      ->capture_default_str();
}

void AddRetentionOptions(CLI::App& app, RetentionOptions& o, bool with_interval) {
  AddDurationOption(app, "--finished-max-age", o.finished_max_age, "keep done/failed/cancelled messages this long");
  AddDurationOption(app, "--dead-max-age", o.dead_max_age, "keep dead letters this long");
  AddDurationOption(app, "--events-max-age", o.events_max_age, "keep bus_events this long");
  AddDurationOption(app, "--usage-max-age", o.usage_max_age, "keep message_usage rows this long");
  app.add_option("--batch-size", o.batch_size, "rows per delete statement")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option_function<int64_t>(
         "--pause-ms", [&o](int64_t ms) { o.pause = std::chrono::milliseconds(ms); },
         "pause between batches (default " + std::to_string(o.pause.count()) + ")")
      ->check(CLI::Range(int64_t{0}, int64_t{600000}));
  if (with_interval) AddDurationOption(app, "--interval", o.interval, "time between passes");
}

}  // namespace cogo::ops
