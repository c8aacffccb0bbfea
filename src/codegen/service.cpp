#include "cogo/codegen/service.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "cogo/artifacts/store.h"
#include "cogo/config/json_reader.h"
#include "cogo/policy/metering.h"
#include "cogo/runtime/model_handler.h"

namespace cogo::codegen {
namespace {

using nlohmann::json;
using runtime::HandlerResult;

constexpr const char* kSystemPrompt =
    "You change a code repository to carry out an instruction. Answer only with SEARCH/REPLACE "
    "blocks, one per change, each preceded by the file's path relative to the repository root:\n\n"
    "path/to/file.c\n<<<<<<< SEARCH\nexact lines to replace, copied from the file\n=======\n"
    "the new lines\n>>>>>>> REPLACE\n\n"
    "The SEARCH text must occur exactly once in the file, byte for byte. An empty SEARCH section "
    "creates a new file. Paths are relative, without .. and outside .git.";

struct Task {
  std::string task_id;
  std::string repo;
  std::string instruction;
  std::optional<std::string> edits_json;
  std::string feedback_json;
};

Task ReadTask(const std::string& payload) {
  const auto doc = config::JsonDocument::Parse(payload);
  const auto o = doc.root().AsObject();
  Task task;
  task.task_id = o.String("taskId", {.max_bytes = 128});
  task.repo = o.String("repo", {.max_bytes = 1024});
  task.instruction = o.StringOr("instruction", "", {.allow_empty = true, .max_bytes = 64 * 1024});
  if (auto edits = o.Optional("edits")) task.edits_json = edits->Dump();
  if (auto feedback = o.Optional("feedback")) task.feedback_json = feedback->Dump();
  (void)o.Optional("__assignment");  // judged by the worker's guards
  o.Finish();
  return task;
}

std::string Describe(const EditError& e) {
  return e.reason + (e.index >= 0 ? " (edit " + std::to_string(e.index) + ")" : "") + ": " + e.message;
}

std::string Tail(const std::string& text, std::size_t bytes) {
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

std::string ChangedFiles(const std::vector<FileChange>& changes) {
  json files = json::array();
  for (const auto& c : changes) files.push_back(c.path);
  return files.dump();
}

}  // namespace

void AddRepoAndArtifactOptions(CLI::App& app, std::vector<std::string>& repo_roots, std::string& artifacts_dir) {
  app.add_option("--repo-root", repo_roots, "directories task repositories must be inside (repeatable)")
      ->envname("COGO_REPO_ROOTS")->delimiter(',')->capture_default_str();
  app.add_option("--artifacts-dir", artifacts_dir, "where artifacts/<taskId>/... are written")
      ->envname("COGO_ARTIFACTS_DIR")->capture_default_str();
}

std::vector<providers::ChatMessage> BuildPrompt(const std::string& instruction, const std::vector<std::string>& file_list,
                                                const std::vector<ContextFile>& files, const std::string& feedback) {
  std::string user = "Instruction:\n" + instruction + "\n\nFiles in the repository:\n";
  for (const auto& f : file_list) user += f + "\n";
  for (const auto& f : files) {
    user += "\n" + f.path + (f.truncated ? " (cut)" : "") + "\n```\n" + f.content;
    if (!f.content.empty() && f.content.back() != '\n') user += "\n";
    user += "```\n";
  }
  if (!feedback.empty()) user += "\nThe previous attempt did not pass:\n" + feedback + "\n";
  return {{"system", kSystemPrompt}, {"user", user}};
}

std::string FeedbackText(const std::string& report_json, std::size_t max_bytes) {
  const json r = json::parse(report_json, nullptr, false);
  if (r.is_discarded() || !r.is_object()) return {};
  std::string out;
  const auto apply = r.value("apply", json::object());
  if (apply.is_object() && !apply.value("ok", true) && apply.contains("error")) {
    out += "The edits did not apply: " + apply["error"].value("reason", std::string()) + ": " +
           apply["error"].value("message", std::string()) + "\n";
  }
  const auto build = r.value("build", json::object());
  if (build.is_object() && build.contains("ok") && !build.value("ok", false) && build.value("ran", true)) {
    out += "The build failed (exit " + std::to_string(build.value("exit_code", -1)) + "):\n" +
           Tail(build.value("log", std::string()), max_bytes / 2) + "\n";
  }
  const auto tests = r.value("tests", json::object());
  if (tests.is_object() && tests.value("failed", 0) > 0) {
    out += "Failing tests:\n";
    for (const auto& f : tests.value("failures", json::array())) {
      out += "- " + f.value("name", std::string()) + ": " + f.value("message", std::string()) + "\n";
    }
  }
  if (r.value("limits", json::object()).value("timed_out", false)) out += "The run was stopped at its time limit.\n";
  return out.size() > max_bytes ? out.substr(0, max_bytes) : out;
}

std::string RejectionText(const EditError& error) {
  return "Your reply could not be used: " + Describe(error) +
         ". Answer again with SEARCH/REPLACE blocks only, each SEARCH text copied exactly from the file.";
}

runtime::Handler MakeCodegenHandler(std::shared_ptr<providers::ModelProvider> provider,
                                    std::shared_ptr<const policy::PolicyTable> policy_table, CodegenOptions options,
                                    std::shared_ptr<spdlog::logger> logger) {
  auto store = std::make_shared<artifacts::ArtifactStore>(options.artifacts_dir);
  return [provider, policy_table, options, logger, store](runtime::HandlerContext& ctx) {
    Task task;
    try {
      task = ReadTask(ctx.message.payload_json);
    } catch (const config::JsonError& e) {
      return HandlerResult::Fail("invalid_input", e.what());
    }
    if (!artifacts::ValidTaskId(task.task_id)) return HandlerResult::Fail("invalid_input", "taskId is not a valid task id");
    const auto repo = ResolveRepo(task.repo, options.repo_roots);
    if (!repo) return HandlerResult::Fail("repo_not_allowed", "the repository is not a directory inside a repository root");
    const artifacts::Writer writer{ctx.message.lease.message_id, ctx.fence()};
    std::vector<std::pair<std::string, std::string>> files;

    auto finish = [&](const std::vector<Edit>& edits, const std::vector<FileChange>& changes, const char* source,
                      int attempts) {
      json result = {{"taskId", task.task_id}, {"source", source}, {"edits", json::parse(EditsToJson(edits))},
                     {"files", json::parse(ChangedFiles(changes))}, {"attempts", attempts},
                     {"artifact", task.task_id + "/edits.json"}};
      files.emplace_back("edits.json", json{{"taskId", task.task_id}, {"source", source}, {"edits", result["edits"]}}.dump(2));
      const auto outcome = store->Write(task.task_id, ctx.message.tenant, "", files, writer);
      if (outcome != artifacts::WriteOutcome::written) {
        return HandlerResult::Fail("artifacts_refused", artifacts::WriteOutcomeName(outcome));
      }
      return HandlerResult::Complete(result.dump(), std::to_string(edits.size()) + " edits (" + source + ")");
    };

    if (task.edits_json) {
      auto parsed = ParseEditsJson(*task.edits_json, options.limits);
      if (auto* e = std::get_if<EditError>(&parsed)) return HandlerResult::Fail("edits_invalid", Describe(*e));
      const auto edits = std::get<std::vector<Edit>>(std::move(parsed));
      auto planned = PlanEdits(*repo, edits, options.limits);
      if (auto* e = std::get_if<EditError>(&planned)) return HandlerResult::Fail("edits_invalid", Describe(*e));
      return finish(edits, std::get<std::vector<FileChange>>(planned), "parameters", 0);
    }

    auto priced = runtime::PricedModel(ctx, *policy_table);
    if (auto* refused = std::get_if<HandlerResult>(&priced)) return std::move(*refused);
    const auto& a = *ctx.assignment;
    if (task.instruction.empty()) return HandlerResult::Fail("invalid_input", "an instruction or edits are required");
    const auto listed = ListRepoFiles(*repo, options.context.max_listed_files);
    const auto context = GatherContext(*repo, task.instruction, listed, options.context);
    providers::ChatRequest request;
    request.model = a.model;
    request.max_tokens = static_cast<int>(std::min<int64_t>(options.max_tokens, std::max<int64_t>(1, a.budget.max_tokens)));
    request.messages = BuildPrompt(task.instruction, listed, context, FeedbackText(task.feedback_json));
    request.control = runtime::ControlOf(ctx);
    std::string prompt_text;
    for (const auto& m : request.messages) prompt_text += "### " + m.role + "\n" + m.content + "\n";
    files.emplace_back("prompt.txt", prompt_text);
    EditError last;
    for (int attempt = 1; attempt <= options.reply_attempts && !ctx.stop.stop_requested(); ++attempt) {
      providers::ChatResponse response;
      try {
        response = provider->Chat(request);
      } catch (const providers::ProviderError& e) {
        return runtime::ProviderFailure(ctx, e, *logger);
      }
      const auto usage = policy::PricedUsage(policy_table->prices(), a.model, response.usage.input_tokens,
                                             response.usage.output_tokens).value_or(response.usage);
      (void)ctx.usage.Report(usage);  // over budget: the stop token fires and the runtime fails the message
      files.emplace_back("reply-" + std::to_string(attempt) + ".txt", response.content);
      auto parsed = ParseReplyBlocks(response.content, options.limits);
      if (auto* e = std::get_if<EditError>(&parsed)) {
        last = *e;
      } else {
        const auto edits = std::get<std::vector<Edit>>(std::move(parsed));
        auto planned = PlanEdits(*repo, edits, options.limits);
        if (auto* pe = std::get_if<EditError>(&planned)) {
          last = *pe;
        } else {
          return finish(edits, std::get<std::vector<FileChange>>(planned), "model", attempt);
        }
      }
      logger->info("message {}: reply {} refused: {}", ctx.message.lease.message_id, attempt, Describe(last));
      request.messages.push_back({"assistant", response.content});
      request.messages.push_back({"user", RejectionText(last)});
    }
    (void)store->Write(task.task_id, ctx.message.tenant, "", files, writer);
    return HandlerResult::Fail("codegen_reply_invalid", Describe(last));
  };
}

}  // namespace cogo::codegen
