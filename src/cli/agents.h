// Private: `cogo agents list|propose|canary|promote|rollback`, the operator's hand on agent
// versions (sql/016) — the same operations as the brain's /api/agents routes, written straight
// to the database and recorded in agent_version_events as cli:<user>. A proposal is checked
// against the routing rules and the policy table (--routing, --policy: the brain's files).
// One instance per CLI run; not thread-safe.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "cogo/orchestrator/versions.h"
#include "cogo/runtime/daemon.h"

namespace cogo::cli {

class AgentCommands {
 public:
  explicit AgentCommands(CLI::App& app);
  // True when an agents subcommand was given (Run then handles it).
  [[nodiscard]] bool chosen() const;
  // Prints JSON; returns the exit code (1 when the operation is refused). Throws
  // std::invalid_argument on bad input (exit 2).
  int Run(const runtime::CommonOptions& common);

 private:
  CLI::App* root_;
  CLI::App* list_;
  CLI::App* propose_;
  CLI::App* canary_;
  CLI::App* promote_;
  CLI::App* rollback_;
  orchestrator::VersionOp op_;
  double max_cost_usd_ = 0;
  int64_t max_tokens_ = 0;
  int64_t ttl_ms_ = 0;
  std::string reason_;
  std::string routing_ = "config/routing.example.json";
  std::string policy_ = "config/policy.example.json";
};

}  // namespace cogo::cli
