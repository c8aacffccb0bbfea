#include "cogo/usage/usage_log.h"

#include <nlohmann/json.hpp>
#include <pqxx/connection>

#include "cogo/db/pipelined_transaction.h"
#include "usage/statements.h"

namespace cogo::usage {

UsageRecord RecordOf(const bus::ClaimedMessage& message, const policy::AssignmentEnvelope* assignment,
                     const policy::Usage& usage, std::string outcome) {
  return {message.lease,
          message.tenant,
          message.route,
          assignment != nullptr ? assignment->agent_id : "",
          assignment != nullptr ? assignment->version : "",
          assignment != nullptr ? assignment->model : "",
          usage,
          std::move(outcome)};
}

namespace {

std::string RecordsInput(const std::vector<UsageRecord>& records) {
  using nlohmann::json;
  json input = json::array();
  for (const UsageRecord& r : records) {
    input.push_back({{"message_id", r.lease.message_id},
                     {"attempt", r.lease.attempt},
                     {"tenant", r.tenant},
                     {"service", r.route.service},
                     {"role", r.route.role},
                     {"agent_id", r.agent_id.empty() ? json() : json(r.agent_id)},
                     {"version", r.version.empty() ? json() : json(r.version)},
                     {"model", r.model.empty() ? json() : json(r.model)},
                     {"input_tokens", r.usage.input_tokens},
                     {"output_tokens", r.usage.output_tokens},
                     {"cost_usd", r.usage.cost_usd},
                     {"outcome", r.outcome}});
  }
  return input.dump();
}

}  // namespace

void Record(pqxx::transaction_base& txn, const std::vector<UsageRecord>& records) {
  if (records.empty()) return;
  txn.conn().prepare(sql::kRecordUsageName, sql::kRecordUsage);
  txn.exec_prepared(sql::kRecordUsageName, RecordsInput(records));
}

void Queue(db::PipelinedTransaction& t, const std::vector<UsageRecord>& records) {
  if (records.empty()) return;
  t.connection().prepare(sql::kRecordUsageName, sql::kRecordUsage);
  (void)t.Queue(sql::kRecordUsageName, {t.Literal(RecordsInput(records))});
}

}  // namespace cogo::usage
