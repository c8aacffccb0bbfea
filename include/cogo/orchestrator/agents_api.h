// The brain's REST API for agent versions and decision quality, as routes on its JSON service
// (docs/upgrades.md, docs/decision-quality.md):
//   GET  /api/agents                                        every agent's versions, weights,
//                                                           status, since and live figures (1 h)
//   GET  /api/agents/{agent}                              its versions and last 50 changes
//   POST /api/agents/{agent}/versions                     propose {version, model?, budget?,
//                                                           ttl_ms?, note?} -> 201
//   POST /api/agents/{agent}/versions/{version}/canary    {weight, reason?}
//   POST /api/agents/{agent}/versions/{version}/promote   {reason?}
//   POST /api/agents/{agent}/versions/{version}/rollback  {reason?}
//   GET  /api/decisions/quality?agent=&version=&intent=&days=   decision_quality rows and totals
//   POST /api/decisions/{id}/feedback {correct, expected_intent?} -> 201
// Agent routes need service_role; every change is written to agent_version_events with the
// token's subject. Feedback takes any token: a tenant labels its own decisions (another
// tenant's is 404). Thread-safe.
#pragma once

#include <memory>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/http/json_service.h"
#include "cogo/orchestrator/routing.h"
#include "cogo/policy/policy_table.h"

namespace cogo::orchestrator {

class VersionBook;

// `versions` (may be null) is told of every change so this brain decides with it at once.
[[nodiscard]] std::vector<http::Route> AgentRoutes(http::JsonService& service,
                                                   std::shared_ptr<const RoutingTable> routing,
                                                   std::shared_ptr<const policy::PolicyTable> policy,
                                                   std::shared_ptr<VersionBook> versions,
                                                   std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::orchestrator
