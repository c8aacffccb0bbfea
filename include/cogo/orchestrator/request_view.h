// The read side of one request: a message and every descendant (walked by parent_id: decide ->
// execute -> target), their merged event trail, and the request's overall status and final
// result. The SQL walks the tree; Summarize is the pure judgement. Functions use the caller's
// transaction (read-only is enough); thread-safety as pqxx (one transaction per thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

namespace cogo::orchestrator {

struct NodeState {
  int64_t id = 0;
  int64_t parent_id = 0;  // 0 for the root
  std::string route;      // service/role
  std::string status;     // the bus status
  std::string last_error;
  bool has_children = false;
};

struct RequestSummary {
  std::string status;      // queued | running | done | failed
  int64_t result_from = 0;  // done: the leaf whose result is the request's result
  std::string error;       // failed: "<route>: <last_error>" of the first failed message
};

// Pure. queued: only the root exists and is queued; running: anything queued or running;
// failed: something failed, died or was cancelled (and nothing is still running); done:
// everything done, the result being the last leaf's (highest id).
[[nodiscard]] RequestSummary Summarize(const std::vector<NodeState>& nodes);

// {id, tenant, status, result, error, messages: [...], trail: [...]}, or nullopt when absent.
// `tenant`: when set, a message of another tenant is reported absent. A request the brain
// routed to a workflow also has `workflow: {run_id, workflow_id, status, reason}`, and its
// status follows the run's (running until the run ends, failed unless it succeeded).
[[nodiscard]] std::optional<std::string> RequestViewJson(pqxx::transaction_base& txn, int64_t id,
                                                         const std::optional<std::string>& tenant);

}  // namespace cogo::orchestrator
