#include "cogo/ops/reclaimer.h"

#include <pqxx/nontransaction>

#include "cogo/bus/bus.h"
#include "cogo/log/logging.h"
#include "cogo/runtime/periodic.h"
#include "ops/statements.h"

namespace cogo::ops {

int64_t ExpireQueuedTtl(pqxx::connection& conn, int limit) {
  conn.prepare(sql::kExpireTtlName, sql::kExpireTtl);
  pqxx::nontransaction txn(conn);  // one statement: its own short transaction
  return txn.exec_prepared1(sql::kExpireTtlName, limit)[0].as<int64_t>();
}

ReclaimReport ReclaimPass(pqxx::connection& conn, const ReclaimerOptions& options,
                          std::stop_token stop) {
  ReclaimReport report;
  bus::Bus bus(conn);
  while (!stop.stop_requested()) {
    const auto counts = bus.Reclaim(options.batch_size);
    ++report.statements;
    report.requeued += counts.requeued;
    report.dead_lettered += counts.dead_lettered;
    if (counts.requeued + counts.dead_lettered < options.batch_size) break;
  }
  while (options.expire_ttl && !stop.stop_requested()) {
    const int64_t ended = ExpireQueuedTtl(conn, options.batch_size);
    ++report.statements;
    report.ttl_expired += ended;
    if (ended < options.batch_size) break;
  }
  return report;
}

std::unique_ptr<runtime::Component> MakeReclaimerComponent(ReclaimerOptions options,
                                                           runtime::DaemonContext& context) {
  auto logger = context.logger;
  return std::make_unique<runtime::PeriodicTask>(
      runtime::PeriodicOptions{"reclaimer", context.options.database_url, options.interval, std::chrono::milliseconds(10000), &context.registry},
      [options, logger](pqxx::connection& conn, std::stop_token stop) {
        const ReclaimReport r = ReclaimPass(conn, options, stop);
        if (!r.empty()) {
          logger->info("reclaimed: requeued {}, dead-lettered {}, ttl_expired {} ({} statements)",
                       r.requeued, r.dead_lettered, r.ttl_expired, r.statements);
        }
      },
      log::Get(context.logger->name() + ".reclaimer"));
}

}  // namespace cogo::ops
