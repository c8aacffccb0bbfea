#include "cogo/ops/retention.h"

#include <string>

#include <pqxx/nontransaction>

#include "cogo/base/sleep.h"
#include "cogo/log/logging.h"
#include "cogo/ops/duration.h"
#include "cogo/runtime/periodic.h"
#include "ops/statements.h"

namespace cogo::ops {
namespace {

const std::string kFinishedStatuses = "{done,failed,cancelled}";
const std::string kDeadStatuses = "{dead}";

// Runs one delete statement batch after batch (each its own transaction) until one comes back
// short; pauses between batches.
template <typename Batch>
int64_t InBatches(int limit, std::chrono::milliseconds pause, std::stop_token stop, Batch&& batch) {
  int64_t total = 0;
  while (!stop.stop_requested()) {
    const int64_t n = batch();
    total += n;
    if (n < limit) break;
    if (!base::SleepFor(stop, pause)) break;
  }
  return total;
}

void PrepareAll(pqxx::connection& conn) {
  conn.prepare(sql::kPruneMessagesName, sql::kPruneMessages);
  conn.prepare(sql::kCountMessagesName, sql::kCountMessages);
  conn.prepare(sql::kPruneEventsName, sql::kPruneEvents);
  conn.prepare(sql::kCountEventsName, sql::kCountEvents);
  conn.prepare(sql::kPruneUsageName, sql::kPruneUsage);
  conn.prepare(sql::kCountUsageName, sql::kCountUsage);
}

}  // namespace

RetentionCounts Prune(pqxx::connection& conn, const RetentionOptions& o, std::stop_token stop) {
  PrepareAll(conn);
  auto run = [&](const char* statement, auto... params) {
    return InBatches(o.batch_size, o.pause, stop, [&] {
      pqxx::nontransaction txn(conn);
      return txn.exec_prepared1(statement, params..., o.batch_size)[0].template as<int64_t>();
    });
  };
  RetentionCounts counts;
  counts.finished = run(sql::kPruneMessagesName, kFinishedStatuses, o.finished_max_age.count());
  counts.dead = run(sql::kPruneMessagesName, kDeadStatuses, o.dead_max_age.count());
  // Each batch of events starts where the previous one ended (kPruneEvents).
  std::string reached = "-infinity";
  counts.events = InBatches(o.batch_size, o.pause, stop, [&] {
    pqxx::nontransaction txn(conn);
    const auto row = txn.exec_prepared1(sql::kPruneEventsName, o.events_max_age.count(),
                                        o.batch_size, reached);
    reached = row[1].as<std::string>();
    return row[0].as<int64_t>();
  });
  counts.usage = run(sql::kPruneUsageName, o.usage_max_age.count());
  return counts;
}

RetentionCounts CountPrunable(pqxx::connection& conn, const RetentionOptions& o) {
  PrepareAll(conn);
  pqxx::nontransaction txn(conn);
  auto count = [&](const char* statement, auto... params) {
    return txn.exec_prepared1(statement, params...)[0].template as<int64_t>();
  };
  RetentionCounts counts;
  counts.finished = count(sql::kCountMessagesName, kFinishedStatuses, o.finished_max_age.count());
  counts.dead = count(sql::kCountMessagesName, kDeadStatuses, o.dead_max_age.count());
  counts.events = count(sql::kCountEventsName, o.events_max_age.count());
  counts.usage = count(sql::kCountUsageName, o.usage_max_age.count());
  return counts;
}

std::unique_ptr<runtime::Component> MakeRetentionComponent(RetentionOptions options,
                                                           runtime::DaemonContext& context) {
  auto logger = context.logger;
  logger->info("retention: finished after {}, dead after {}, events after {}, usage after {}; "
               "batches of {} every {} ms",
               FormatDuration(options.finished_max_age), FormatDuration(options.dead_max_age),
               FormatDuration(options.events_max_age), FormatDuration(options.usage_max_age),
               options.batch_size, options.pause.count());
  return std::make_unique<runtime::PeriodicTask>(
      runtime::PeriodicOptions{"retention", context.options.database_url, options.interval, std::chrono::milliseconds(10000), &context.registry},
      [options, logger](pqxx::connection& conn, std::stop_token stop) {
        const RetentionCounts c = Prune(conn, options, stop);
        logger->info("pruned: finished {}, dead {}, events {}, usage {}", c.finished, c.dead,
                     c.events, c.usage);
      },
      log::Get(context.logger->name() + ".retention"));
}

}  // namespace cogo::ops
