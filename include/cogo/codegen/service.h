// The (codegen, generate) handler: turns a task into edits.json. Payload
// `{taskId, repo, instruction, edits?, feedback?}` (the codeBuildTest workflow's `generate`).
// - `edits` given (a person's or another agent's patch): validated against the repository as
//   any edit (docs/codegen.md), no model call.
// - else: a bounded-context prompt (instruction, file list, the files it names or the smallest
//   ones, the last build-test report as feedback) to the chat provider with the assignment's
//   model; the reply's SEARCH/REPLACE blocks are parsed and validated; a reply that fails is sent
//   back with the reason, up to `reply_attempts` calls, then the message fails for good with
//   `codegen_reply_invalid: <reason>`. Usage is priced and metered like chat.
// Result `{taskId, source: "parameters"|"model", edits: [...], files: [...], attempts}`;
// artifacts `<taskId>/edits.json`, and for model calls `prompt.txt` and `reply-<n>.txt`.
// Thread-safety: the handler may run on many worker threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/codegen/edits.h"
#include "cogo/codegen/repo.h"
#include "cogo/policy/policy_table.h"
#include "cogo/providers/provider.h"
#include "cogo/runtime/handler.h"

namespace CLI {
class App;
}

namespace cogo::codegen {

struct CodegenOptions {
  std::vector<std::string> repo_roots = {"examples"};  // --repo-root: where task repos may live
  std::string artifacts_dir = "artifacts";               // --artifacts-dir
  int max_tokens = 4096;                                 // per reply, capped by the budget
  int reply_attempts = 2;                                // model calls per message
  ContextLimits context;
  EditLimits limits;
};

// --repo-root, --artifacts-dir (shared by codegen and build-test: env COGO_REPO_ROOTS,
// COGO_ARTIFACTS_DIR).
void AddRepoAndArtifactOptions(CLI::App& app, std::vector<std::string>& repo_roots, std::string& artifacts_dir);

// Pure: the chat messages for a task. `feedback` is a short text about the previous attempt
// (FeedbackText), empty on the first.
[[nodiscard]] std::vector<providers::ChatMessage> BuildPrompt(const std::string& instruction,
                                                              const std::vector<std::string>& file_list,
                                                              const std::vector<ContextFile>& files,
                                                              const std::string& feedback);
// Pure: what a model should hear about a build-test report (apply error, build exit and log
// tail, failing tests), at most `max_bytes`. Empty for an empty or non-object document.
[[nodiscard]] std::string FeedbackText(const std::string& report_json, std::size_t max_bytes = 4096);
// Pure: the follow-up message after a reply that could not be used.
[[nodiscard]] std::string RejectionText(const EditError& error);

[[nodiscard]] runtime::Handler MakeCodegenHandler(std::shared_ptr<providers::ModelProvider> provider,
                                                  std::shared_ptr<const policy::PolicyTable> policy,
                                                  CodegenOptions options, std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::codegen
