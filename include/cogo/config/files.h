// Loading the JSON config files daemons share (policy table, routing rules): read the file,
// parse strictly, and throw one std::runtime_error naming the file and the key path on any
// problem, so a daemon refuses to start with a clear line. Thread-safe: free functions.
#pragma once

#include <memory>
#include <string>

#include "cogo/orchestrator/routing.h"
#include "cogo/policy/policy_table.h"

namespace cogo::config {

// The whole file; throws std::runtime_error when it cannot be read.
[[nodiscard]] std::string ReadFile(const std::string& path);

[[nodiscard]] std::shared_ptr<const policy::PolicyTable> LoadPolicy(const std::string& path);
[[nodiscard]] std::shared_ptr<const orchestrator::RoutingTable> LoadRouting(const std::string& path);

}  // namespace cogo::config
