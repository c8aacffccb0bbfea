// The artifacts REST routes, mounted on the brain's JSON service, for the dashboard and people:
//   GET /api/artifacts/{task_id}                      {taskId, files: [{path, bytes}]}
//   GET /api/artifacts/{task_id}/{name}               one file of the task directory
//   GET /api/artifacts/{task_id}/{dir}/{name}         one file of a part (build-test/report.json)
// A `.json` file is answered as itself; any other file as {path, bytes, text}. Tenant tokens see
// their own tenant's tasks only (another tenant's task is 404, as a missing one); service_role
// sees all. Thread-safety: the routes only read the store.
#pragma once

#include <memory>
#include <vector>

#include "cogo/artifacts/store.h"
#include "cogo/http/json_service.h"

namespace cogo::artifacts {

[[nodiscard]] std::vector<http::Route> ArtifactRoutes(std::shared_ptr<const ArtifactStore> store);

}  // namespace cogo::artifacts
