// Private: `cogo workflows list|show|runs|inspect|cancel|stuck`, the operator's view of the
// workflow engine's tables (sql/008). One instance per CLI run; not thread-safe.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "cogo/runtime/daemon.h"

namespace cogo::cli {

class WorkflowCommands {
 public:
  explicit WorkflowCommands(CLI::App& app);
  // True when a workflows subcommand was given (Run then handles it).
  [[nodiscard]] bool chosen() const;
  // Prints JSON; returns the exit code. Throws std::invalid_argument on bad input (exit 2).
  int Run(const runtime::CommonOptions& common);

 private:
  CLI::App* root_;
  CLI::App* list_;
  CLI::App* show_;
  CLI::App* runs_;
  CLI::App* inspect_;
  CLI::App* cancel_;
  CLI::App* stuck_;
  std::string workflow_id_;
  int version_ = 0;
  int64_t run_id_ = 0;
  std::string tenant_;
  std::string status_;
  int64_t before_ = 0;
  int limit_ = 50;
  std::string reason_ = "cancelled by operator";
};

}  // namespace cogo::cli
