// Private: `cogo eval routing --set FILE`, the offline routing evaluation: every item of a
// labelled set (orchestrator/routing_eval.h) goes through a running brain's real decide path
// (POST /api/orchestrator/plan: rules, the classifier when enabled, agent versions), and the
// accuracy and confusion are printed as JSON. One instance per CLI run; not thread-safe.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace cogo::cli {

class EvalCommands {
 public:
  explicit EvalCommands(CLI::App& app);
  [[nodiscard]] bool chosen() const;
  // Exit 0, or 1 when the accuracy is below --min-accuracy or the brain fails. Throws
  // std::invalid_argument on a bad set (exit 2).
  int Run();

 private:
  CLI::App* root_;
  CLI::App* routing_;
  std::string set_;
  std::string brain_url_ = "http://127.0.0.1:8781";
  double min_accuracy_ = 0;
};

}  // namespace cogo::cli
