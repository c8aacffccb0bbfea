// The --policy flag (env COGO_POLICY) of the daemons that price or admit by the policy table,
// and loading the table it names at start, logged so an operator sees which file is in force.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "cogo/policy/policy_table.h"

namespace CLI {
class App;
}

namespace cogo::policy {

struct PolicyFlag {
  std::string path = "config/policy.example.json";
};

void AddPolicyOption(CLI::App& app, PolicyFlag& flag);

// Throws, naming the file, when it cannot be read or is not a valid table (docs/policy.md).
[[nodiscard]] std::shared_ptr<const PolicyTable> LoadPolicy(const PolicyFlag& flag, spdlog::logger& logger);

}  // namespace cogo::policy
