// The (code, build-test) and (code, promote) handlers of cogo-build-test-worker.
// build-test, payload `{taskId, repo, build, test, edits?, timeoutMs?, junit?}`: copies the repository
// (without .git) into a fresh workspace `<workspace_root>/<message id>-<fence>` (leftovers of
// earlier claims of the same message, e.g. a worker SIGKILLed mid-build, are removed first),
// applies the edits all or nothing, runs `build` and then `test` in the sandbox (sandbox.h),
// writes `<taskId>/build-test/{report.json,build.log,test.log}` and completes with the report
// (logs cut to their tail). Edits that do not apply and failing builds or tests are results, not
// failures: the workflow's gate judges them. Test counts come from the runner's output (ctest,
// pytest); when it is neither, from the JUnit XML file `junit` names, if the test command wrote it. The workspace is removed (kept on failure when
// `keep_failed_workspaces`).
// promote, payload `{taskId, repo, edits}`: applies the edits in a temporary git worktree of the
// target repository (hooks disabled), commits them and points branch `cogo/<taskId>` at the
// commit; result `{taskId, branch, commit, files}`, also written as `<taskId>/promote.json`.
// Thread-safety: both handlers may run on many worker threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/buildtest/sandbox.h"
#include "cogo/codegen/edits.h"
#include "cogo/runtime/handler.h"

namespace CLI {
class App;
}

namespace cogo::buildtest {

struct BuildTestOptions {
  std::vector<std::string> repo_roots = {"examples"};
  std::string artifacts_dir = "artifacts";
  std::string workspace_root;  // empty: <TMPDIR>/cogo-workspaces
  bool keep_failed_workspaces = false;
  SandboxOptions sandbox;
  SandboxLimits limits;          // a task's timeoutMs may only shorten limits.timeout
  std::string sandbox_description;  // ProbeSandbox's, for report.json
  codegen::EditLimits edit_limits;
  std::size_t report_log_bytes = 4096;
};

// --repo-root, --artifacts-dir, --workspace-root, --keep-failed-workspaces, --bwrap,
// --sandbox-uid/--sandbox-gid, --timeout-ms, --cpu-seconds, --memory-mb, --file-size-mb,
// --max-processes, --max-output-kb.
void AddBuildTestOptions(CLI::App& app, BuildTestOptions& options);

[[nodiscard]] runtime::Handler MakeBuildTestHandler(BuildTestOptions options, std::shared_ptr<spdlog::logger> logger);
[[nodiscard]] runtime::Handler MakePromoteHandler(BuildTestOptions options, std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::buildtest
