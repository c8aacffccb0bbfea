// The usage log, table message_usage: the tokens and cost each attempt of a message spent, who
// spent them (tenant, route, agent, version, model) and how the attempt ended. Written in the
// transaction that records the attempt's outcome (the worker's flush, or a handler that commits
// itself), so spend and outcome agree; read by the executor's tenant cap and the metrics. The
// bus knows nothing of it. Free functions; the transaction is the caller's.
#pragma once

#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "cogo/bus/message.h"
#include "cogo/policy/assignment.h"
#include "cogo/policy/usage.h"

namespace cogo::db {
class PipelinedTransaction;
}

namespace cogo::usage {

// Tokens and cost one attempt of a message spent, and who spent them.
struct UsageRecord {
  bus::Lease lease;
  std::string tenant;
  bus::Route route;
  std::string agent_id;
  std::string version;
  std::string model;
  policy::Usage usage;
  std::string outcome;  // completed, or the failure's reason (budget_exceeded, ...)
};

// The record of one attempt of `message`, whose assignment (null: none) names the spender.
[[nodiscard]] UsageRecord RecordOf(const bus::ClaimedMessage& message,
                                   const policy::AssignmentEnvelope* assignment,
                                   const policy::Usage& usage, std::string outcome);

// Inserts the records in one statement; none: nothing.
void Record(pqxx::transaction_base& txn, const std::vector<UsageRecord>& records);
// The same insert queued on a pipelined transaction (one round trip with what else it sends).
void Queue(db::PipelinedTransaction& t, const std::vector<UsageRecord>& records);

}  // namespace cogo::usage
