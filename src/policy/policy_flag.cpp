#include "cogo/policy/policy_flag.h"

#include <CLI/CLI.hpp>

namespace cogo::policy {

void AddPolicyOption(CLI::App& app, PolicyFlag& flag) {
  app.add_option("--policy", flag.path, "policy table (JSON, docs/policy.md)")->envname("COGO_POLICY")->capture_default_str();
}

std::shared_ptr<const PolicyTable> LoadPolicy(const PolicyFlag& flag, spdlog::logger& logger) {
  auto table = LoadPolicyFile(flag.path);
  logger.info("policy table {} loaded", flag.path);
  return table;
}

}  // namespace cogo::policy
