// report.json: what one build-test attempt did, for people, the dashboard and the codeBuildTest
// gate (`build.ok`, `tests.failed`, `tests.passed`, `tests.exit_code`, `limits.timed_out`).
// Counts come from the test runner's output (test_output.h), never from the workspace's say-so.
// Thread-safety: pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cogo/buildtest/sandbox.h"
#include "cogo/buildtest/test_output.h"
#include "cogo/codegen/edits.h"

namespace cogo::buildtest {

struct ApplyResult {
  bool ok = false;
  int edits = 0;
  std::vector<std::string> files;          // changed or created
  std::optional<codegen::EditError> error;  // why the edits were refused
};

struct ReportInput {
  std::string task_id;
  int64_t message_id = 0;
  int64_t fence = 0;
  std::string sandbox;  // ProbeSandbox's description
  ApplyResult apply;
  std::optional<SandboxRun> build;  // absent: not run (the edits did not apply)
  std::optional<SandboxRun> tests;  // absent: not run (no edits applied, or the build failed)
  std::optional<TestCounts> counts;  // absent: the runner's output was not recognised
  SandboxLimits limits;
  std::size_t log_bytes = 4096;  // the tail of each log kept in the report (full logs are files)
};

// The report as JSON text:
// {taskId, attempt: {message_id, fence}, sandbox,
//  apply: {ok, edits, files, error?: {index, reason, message}},
//  build: {ran, ok, exit_code, signal, timed_out, duration_ms, log},
//  tests: {ran, ok, runner, exit_code, signal, timed_out, duration_ms, passed, failed, skipped,
//          failures: [{name, message}], log},
//  limits: {timed_out, hit: ["wall_clock"|"cpu"|"file_size"|"output"], output_truncated, timeout_ms, cpu_seconds, memory_bytes, file_bytes, processes}}
// A command that did not run has ok false and exit_code -1.
[[nodiscard]] std::string BuildReport(const ReportInput& input);

}  // namespace cogo::buildtest
