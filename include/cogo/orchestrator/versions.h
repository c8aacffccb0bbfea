// Agent versions and the pure decisions about them: which version serves a request (a weighted
// choice, stable per request id), and what an operation (propose, canary weight, promote,
// rollback) changes in one agent's versions. No I/O, time passed in; thread-safe. The rows live
// in agent_versions (sql/016); orchestrator/version_store.h reads and writes them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cogo/config/names.h"
#include "cogo/orchestrator/routing.h"
#include "cogo/policy/assignment.h"
#include "cogo/policy/policy_table.h"

namespace cogo::orchestrator {

enum class VersionStatus { proposed, canary, active, retired };
[[nodiscard]] const char* StatusName(VersionStatus status);
[[nodiscard]] std::optional<VersionStatus> ParseStatus(std::string_view name);

inline constexpr config::NameRule kAgentIdName{"agent id", 128, true};
inline constexpr config::NameRule kVersionName{"version", 64, true};

struct AgentVersion {
  std::string agent_id;
  std::string version;
  std::string model;
  policy::Budget budget;
  std::chrono::milliseconds ttl{0};
  VersionStatus status = VersionStatus::proposed;
  double weight = 0;  // percent of the agent's decisions (canary and active versions only)
  policy::TimePoint since{};  // when status or weight last changed
};

// Weights count in units of 0.01 %, rounded to the nearest (the column is numeric(5,2)).
inline constexpr int64_t kWeightUnits = 10000;  // 100 %
[[nodiscard]] int64_t WeightUnits(double weight_percent);

// Where a request falls on the agent's line of kWeightUnits: a hash of the agent id and the
// request id, so one request always gets the same version and two agents' canaries do not
// pick the same requests.
[[nodiscard]] int64_t RequestBucket(std::string_view agent_id, std::string_view request_id);

// The index in `versions` (one agent's) of the version that serves `request_id`, or nullopt
// when no canary or active version carries weight. The line is laid out canaries first (by
// version), then the active version, each with its share of the total weight: a request that
// a canary took at 10 % it keeps when the canary grows to 50 %.
[[nodiscard]] std::optional<size_t> ChooseVersion(const std::vector<AgentVersion>& versions,
                                                  std::string_view request_id);

// The plan served by `version`: its version, model, budget and TTL replace the rule's.
[[nodiscard]] Plan WithVersion(Plan plan, const AgentVersion& version);

enum class VersionAction { propose, canary, promote, rollback };
[[nodiscard]] const char* ActionName(VersionAction action);

struct VersionOp {
  VersionAction action = VersionAction::propose;
  std::string agent_id;
  std::string version;
  double weight = 0;      // canary: the version's new share, percent
  AgentVersion proposal;  // propose: the new version's model, budget and TTL (empty or zero:
                          // the active version's)
};

// One row's change. `before` is empty for a row the operation creates.
struct VersionChange {
  std::optional<AgentVersion> before;
  AgentVersion after;
  std::string event;  // proposed | canary | weight | promoted | retired | rolled_back | reactivated
};

// Why an operation is refused; nothing changes. `reason` is machine-readable.
struct OpRefusal {
  std::string reason;  // unknown_version, version_exists, version_retired, already_active,
                       // no_active_version, weights_exceed_100, nothing_to_roll_back_to,
                       // incomplete_proposal; CheckVersion: unknown_agent, policy_<reason>
  std::string message;
};

// What `op` changes in `current` (every version of op.agent_id), rows leaving `active` first
// (the table allows one active version per agent at any moment). Rules:
// - propose: a new version, proposed, weight 0; what the proposal leaves out (model, budget,
//   TTL) it takes from the active version.
// - canary: a proposed or canary version takes `weight`; the active version keeps the rest
//   (100 minus every canary's weight).
// - promote: the version becomes active with the rest; the old active version is retired.
// - rollback: a proposed or canary version is retired, weight 0, its share back to the active
//   version; an active version is retired and the most recently retired other one is active
//   again.
using OpResult = std::variant<std::vector<VersionChange>, OpRefusal>;
[[nodiscard]] OpResult PlanVersionOp(const std::vector<AgentVersion>& current, const VersionOp& op,
                                     policy::TimePoint now);

// Whether plans served by `version` may run: a routing rule names its agent (unknown_agent)
// and the policy admits each such rule's plan with the version applied (policy_<reason>, as
// the executor would refuse it). nullopt when fine.
[[nodiscard]] std::optional<OpRefusal> CheckVersion(const AgentVersion& version, const RoutingTable& routing,
                                                    const policy::PolicyTable& policy, policy::TimePoint now);

}  // namespace cogo::orchestrator
