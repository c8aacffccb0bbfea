// Runs as the REST API and the CLI see them: start one, deliver an external event, cancel, and
// read runs back. Starting, delivering and cancelling each take the run's row lock in one
// transaction, like the engine's advances, so they never interleave with one. `scope` is the
// caller's tenant (a tenant token) or nullopt (the service role: every tenant); a run outside
// the scope is reported as not found. Stateless functions; the connection is the caller's.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/connection>
#include <pqxx/transaction>
#include <pqxx/transaction_base>

#include "cogo/bus/bus.h"
#include "cogo/workflow/engine.h"

namespace cogo::workflow {

// A request the run store refuses; nothing was written. `reason` is machine-readable.
class RunError : public std::runtime_error {
 public:
  enum class Kind { invalid, not_found, conflict };
  RunError(Kind kind, std::string reason, std::string path, const std::string& message);
  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] const std::string& reason() const { return reason_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  Kind kind_;
  std::string reason_;
  std::string path_;
};

struct StartRequest {
  std::string tenant;
  std::string workflow_id;
  nlohmann::json parameters = nlohmann::json::object();
  std::string idempotency_key;  // empty: none; else a repeat returns the first run
};

struct Started {
  int64_t run_id = 0;
  bool created = false;
  int version = 0;
  int64_t start_message_id = 0;  // the run's start message; 0 for an idempotent repeat
};

// Validates the request against the current definition, inserts the run pinned to its version
// and publishes its start message, in one transaction. Throws RunError (unknown_workflow,
// parameter errors as DefinitionError reasons).
[[nodiscard]] Started StartRun(pqxx::connection& conn, const DefinitionCatalog& catalog,
                               const StartRequest& request);
// The same inside the caller's transaction, for a caller that records more with the start.
[[nodiscard]] Started StartRun(pqxx::work& txn, bus::Bus& bus, const DefinitionCatalog& catalog,
                               const StartRequest& request);

// Records `name` with `data` for the run and publishes its signal message. A run that already
// ended -> RunError conflict `run_finished`. Returns the signal id.
int64_t DeliverSignal(pqxx::connection& conn, int64_t run_id, const std::optional<std::string>& scope,
                      const std::string& name, const nlohmann::json& data);

// Ends the run `cancelled`, its open steps `cancelled`, and cancels its queued and running
// messages (a running handler sees its lease go). A run that already ended -> RunError conflict.
void CancelRun(pqxx::connection& conn, int64_t run_id, const std::optional<std::string>& scope,
               const std::string& reason);

// Whether the run `run_id` (in `scope`) is one of a definition that only a service_role token
// may act on (`"access": "service_role"`, by the version the run is pinned to); nullopt when
// there is no such run in the scope.
[[nodiscard]] std::optional<bool> RunNeedsServiceRole(pqxx::transaction_base& txn, DefinitionCatalog& catalog,
                                                      int64_t run_id, const std::optional<std::string>& scope);

// The run with its steps, gate verdicts, signals and every bus_events row of its messages.
[[nodiscard]] std::optional<std::string> RunViewJson(pqxx::transaction_base& txn, int64_t run_id,
                                                     const std::optional<std::string>& scope);

struct RunFilter {
  std::optional<std::string> tenant;
  std::optional<std::string> workflow_id;
  std::optional<std::string> status;
  std::optional<int64_t> before;  // keyset: runs with a smaller id
  int limit = 50;
};
// {"runs": [...], "next": <id to pass as before> | null}
[[nodiscard]] std::string ListRunsJson(pqxx::transaction_base& txn, const RunFilter& filter);

// {"<workflow id>": {"<status>": n, ...}, ...}
[[nodiscard]] std::string RunCountsJson(pqxx::transaction_base& txn, const std::optional<std::string>& scope);

// Live runs with no queued or running message (nothing will advance them), unchanged for
// `min_age_s` seconds.
[[nodiscard]] std::string StuckRunsJson(pqxx::transaction_base& txn, const std::optional<std::string>& scope,
                                        double min_age_s);

}  // namespace cogo::workflow
