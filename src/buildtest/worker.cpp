#include "cogo/buildtest/worker.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cogo/artifacts/store.h"
#include "cogo/buildtest/report.h"
#include "cogo/codegen/repo.h"
#include "cogo/codegen/service.h"
#include "cogo/config/json_reader.h"

namespace cogo::buildtest {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using runtime::HandlerResult;

struct Task {
  std::string task_id;
  std::string repo;
  std::string build;
  std::string test;
  std::string edits_json = "[]";
  std::optional<int64_t> timeout_ms;
  std::string junit;  // a JUnit XML file the test command writes, relative to the workspace
};

Task ReadTask(const std::string& payload, bool promote) {
  const auto doc = config::JsonDocument::Parse(payload);
  const auto o = doc.root().AsObject();
  Task task;
  task.task_id = o.String("taskId", {.max_bytes = 128});
  task.repo = o.String("repo", {.max_bytes = 1024});
  if (!promote) {
    task.build = o.String("build", {.allow_empty = true, .max_bytes = 4096});
    task.test = o.String("test", {.max_bytes = 4096});
    if (auto timeout = o.Optional("timeoutMs")) task.timeout_ms = timeout->AsInt(1, 24LL * 3600 * 1000);
    task.junit = o.StringOr("junit", "", {.allow_empty = true, .max_bytes = 256});
  }
  if (auto edits = o.Optional("edits")) task.edits_json = edits->Dump();
  (void)o.Optional("__assignment");
  o.Finish();
  return task;
}

std::string WorkspaceRoot(const BuildTestOptions& options) {
  return options.workspace_root.empty() ? (fs::temp_directory_path() / "cogo-workspaces").string()
                                        : options.workspace_root;
}

// Removes a tree the sandbox wrote, whatever modes it left behind.
void RemoveTree(const fs::path& path) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory() && !it->is_symlink()) fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }
  fs::remove_all(path, ec);
}

// The repository's files (without .git) copied to `to`, symlinks as symlinks.
void CopyRepo(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    if (entry.path().filename() == ".git") continue;
    fs::copy(entry.path(), to / entry.path().filename(),
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  }
}

void ChownTree(const fs::path& root, uid_t uid, gid_t gid) {
  (void)lchown(root.c_str(), uid, gid);
  for (const auto& entry : fs::recursive_directory_iterator(root)) (void)lchown(entry.path().c_str(), uid, gid);
}

// Runs argv (no shell) in `cwd`; {exit status, output}.
std::pair<int, std::string> Run(const std::vector<std::string>& args, const std::string& cwd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    if (chdir(cwd.c_str()) != 0) _exit(126);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

std::string Describe(const codegen::EditError& e) {
  return e.reason + (e.index >= 0 ? " (edit " + std::to_string(e.index) + ")" : "") + ": " + e.message;
}

}  // namespace

void AddBuildTestOptions(CLI::App& app, BuildTestOptions& o) {
  codegen::AddRepoAndArtifactOptions(app, o.repo_roots, o.artifacts_dir);
  app.add_option("--workspace-root", o.workspace_root, "where workspaces are made (default <TMPDIR>/cogo-workspaces)")
      ->envname("COGO_WORKSPACE_ROOT");
  app.add_flag("--keep-failed-workspaces", o.keep_failed_workspaces, "keep the workspace of a run that did not pass");
  app.add_option("--bwrap", o.sandbox.bwrap, "the bubblewrap binary")->capture_default_str();
  app.add_option("--sandbox-uid", o.sandbox.uid, "uid commands run as when the worker is root")->capture_default_str();
  app.add_option("--sandbox-gid", o.sandbox.gid, "gid commands run as when the worker is root")->capture_default_str();
  app.add_option_function<int64_t>("--timeout-ms", [&o](int64_t v) { o.limits.timeout = std::chrono::milliseconds(v); },
                                   "wall clock per command (default 600000)")->check(CLI::Range(int64_t{100}, int64_t{86400000}));
  app.add_option("--cpu-seconds", o.limits.cpu_seconds, "RLIMIT_CPU per command")->capture_default_str();
  app.add_option_function<int64_t>("--memory-mb", [&o](int64_t v) { o.limits.memory_bytes = v << 20; },
                                   "RLIMIT_AS per command (default 4096)")->check(CLI::Range(int64_t{16}, int64_t{1} << 20));
  app.add_option_function<int64_t>("--file-size-mb", [&o](int64_t v) { o.limits.file_bytes = v << 20; },
                                   "RLIMIT_FSIZE (default 1024)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--max-processes", o.limits.processes, "RLIMIT_NPROC of the sandbox uid")->capture_default_str();
  app.add_option_function<int64_t>("--max-output-kb", [&o](int64_t v) { o.limits.max_output_bytes = static_cast<size_t>(v) << 10; },
                                   "captured output per command (default 1024)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
}

// A task both handlers accept: its payload read strictly, its repository inside a root, its
// edits checked. Otherwise the permanent failure to return.
struct CheckedTask {
  Task task;
  std::string repo;
  std::vector<codegen::Edit> edits;
};
std::variant<CheckedTask, HandlerResult> CheckTask(const std::string& payload_json, bool promote,
                                                   const BuildTestOptions& options) {
  CheckedTask out;
  try {
    out.task = ReadTask(payload_json, promote);
  } catch (const config::JsonError& e) {
    return HandlerResult::Fail("invalid_input", e.what());
  }
  if (!artifacts::ValidTaskId(out.task.task_id)) return HandlerResult::Fail("invalid_input", "taskId is not a valid task id");
  const auto repo = codegen::ResolveRepo(out.task.repo, options.repo_roots);
  if (!repo) return HandlerResult::Fail("repo_not_allowed", "the repository is not a directory inside a repository root");
  out.repo = *repo;
  auto parsed = codegen::ParseEditsJson(out.task.edits_json, options.edit_limits);
  if (auto* e = std::get_if<codegen::EditError>(&parsed)) return HandlerResult::Fail("edits_invalid", Describe(*e));
  out.edits = std::get<std::vector<codegen::Edit>>(std::move(parsed));
  return out;
}

runtime::Handler MakeBuildTestHandler(BuildTestOptions options, std::shared_ptr<spdlog::logger> logger) {
  auto store = std::make_shared<artifacts::ArtifactStore>(options.artifacts_dir);
  return [options, logger, store](runtime::HandlerContext& ctx) {
    auto checked = CheckTask(ctx.message.payload_json, false, options);
    if (auto* refused = std::get_if<HandlerResult>(&checked)) return std::move(*refused);
    auto& [task, repo, edits] = std::get<CheckedTask>(checked);
    if (!task.junit.empty()) {
      if (auto bad = codegen::CheckPath(task.junit, options.edit_limits); std::holds_alternative<codegen::EditError>(bad)) {
        return HandlerResult::Fail("invalid_input", "junit: " + std::get<codegen::EditError>(bad).reason);
      }
    }

    const fs::path root = WorkspaceRoot(options);
    fs::create_directories(root);
    fs::permissions(root, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    const std::string prefix = std::to_string(ctx.message.lease.message_id) + "-";
    for (const auto& entry : fs::directory_iterator(root)) {  // earlier claims of this message
      if (entry.path().filename().string().starts_with(prefix)) {
        logger->info("message {}: removing the workspace of an earlier claim: {}", ctx.message.lease.message_id, entry.path().string());
        RemoveTree(entry.path());
      }
    }
    const fs::path workspace = root / (prefix + std::to_string(ctx.fence()));
    ReportInput report;
    report.task_id = task.task_id;
    report.message_id = ctx.message.lease.message_id;
    report.fence = ctx.fence();
    report.sandbox = options.sandbox_description;
    report.limits = options.limits;
    if (task.timeout_ms) report.limits.timeout = std::min(report.limits.timeout, std::chrono::milliseconds(*task.timeout_ms));
    report.log_bytes = options.report_log_bytes;
    report.apply.edits = static_cast<int>(edits.size());

    CopyRepo(repo, workspace);
    auto planned = codegen::PlanEdits(workspace.string(), edits, options.edit_limits);
    if (auto* e = std::get_if<codegen::EditError>(&planned)) {
      report.apply.error = *e;
    } else {
      const auto& changes = std::get<std::vector<codegen::FileChange>>(planned);
      codegen::WriteChanges(workspace.string(), changes);
      for (const auto& c : changes) report.apply.files.push_back(c.path);
      report.apply.ok = true;
    }
    if (report.apply.ok) {
      if (geteuid() == 0) ChownTree(workspace, options.sandbox.uid, options.sandbox.gid);
      report.build = task.build.empty() ? SandboxRun{.exit_code = 0, .output = ""}
                                        : RunSandboxed(task.build, workspace.string(), options.sandbox, report.limits, ctx.stop);
      if (report.build->exit_code == 0 && !report.build->timed_out && !ctx.stop.stop_requested()) {
        // A JUnit file counts only when the test command wrote it: one the repository or the
        // edits brought along is removed first.
        auto junit = [&] { return codegen::ReadFileInTree(workspace.string(), task.junit, options.edit_limits); };
        if (!task.junit.empty()) {
          if (auto before = junit(); std::holds_alternative<std::optional<std::string>>(before) &&
                                     std::get<std::optional<std::string>>(before)) {
            fs::remove(workspace / task.junit);
          }
        }
        report.tests = RunSandboxed(task.test, workspace.string(), options.sandbox, report.limits, ctx.stop);
        report.counts = ParseTestOutput(report.tests->output);
        if (!report.counts && !task.junit.empty()) {
          if (auto after = junit(); std::holds_alternative<std::optional<std::string>>(after)) {
            if (const auto& xml = std::get<std::optional<std::string>>(after)) report.counts = ParseJUnitXml(*xml);
          }
        }
      }
    }
    if (ctx.stop.stop_requested()) {
      RemoveTree(workspace);
      return HandlerResult::Retry("stopped", "the lease, deadline or drain ended the attempt");
    }
    const std::string text = BuildReport(report);
    std::vector<std::pair<std::string, std::string>> files = {{"report.json", text}};
    if (report.build) files.emplace_back("build.log", report.build->output);
    if (report.tests) files.emplace_back("test.log", report.tests->output);
    const auto outcome = store->Write(task.task_id, ctx.message.tenant, "build-test", files,
                                      {ctx.message.lease.message_id, ctx.fence()});
    const json doc = json::parse(text);
    const bool passed = doc["tests"]["ok"].get<bool>() && doc["build"]["ok"].get<bool>();
    if (passed || !options.keep_failed_workspaces) RemoveTree(workspace);
    if (outcome != artifacts::WriteOutcome::written) {
      return HandlerResult::Fail("artifacts_refused", artifacts::WriteOutcomeName(outcome));
    }
    const std::string snippet = std::string(passed ? "passed" : "not passed") + ": build " +
                                (doc["build"]["ok"].get<bool>() ? "ok" : "failed") + ", tests " +
                                std::to_string(doc["tests"]["passed"].get<int>()) + " passed " +
                                std::to_string(doc["tests"]["failed"].get<int>()) + " failed";
    return HandlerResult::Complete(text, snippet, task.task_id + "/build-test/report.json");
  };
}

runtime::Handler MakePromoteHandler(BuildTestOptions options, std::shared_ptr<spdlog::logger> logger) {
  auto store = std::make_shared<artifacts::ArtifactStore>(options.artifacts_dir);
  return [options, logger, store](runtime::HandlerContext& ctx) {
    auto checked = CheckTask(ctx.message.payload_json, true, options);
    if (auto* refused = std::get_if<HandlerResult>(&checked)) return std::move(*refused);
    auto& [task, repo, edits] = std::get<CheckedTask>(checked);
    // Hooks and the fsmonitor command off: a commit must not run code from the target
    // repository outside the sandbox.
    const std::vector<std::string> git = {"git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
                                          "-c", "user.name=cogo", "-c", "user.email=cogo@localhost", "-C"};
    auto git_in = [&](const std::string& dir, std::vector<std::string> args) {
      auto argv = git;
      argv.push_back(dir);
      argv.insert(argv.end(), args.begin(), args.end());
      return Run(argv, dir);
    };
    if (git_in(repo, {"rev-parse", "--verify", "HEAD"}).first != 0) {
      return HandlerResult::Fail("not_a_git_repository", "the target repository has no commit to build on");
    }
    const fs::path tree = fs::path(WorkspaceRoot(options)) /
                          ("promote-" + std::to_string(ctx.message.lease.message_id) + "-" + std::to_string(ctx.fence()));
    fs::create_directories(tree.parent_path());
    RemoveTree(tree);
    (void)git_in(repo, {"worktree", "prune"});
    if (auto [status, out] = git_in(repo, {"worktree", "add", "--detach", tree.string(), "HEAD"}); status != 0) {
      return HandlerResult::Retry("git_failed", "git worktree add: " + out.substr(0, 300));
    }
    auto cleanup = [&] {
      (void)git_in(repo, {"worktree", "remove", "--force", tree.string()});
      RemoveTree(tree);
    };
    auto planned = codegen::PlanEdits(tree.string(), edits, options.edit_limits);
    if (auto* e = std::get_if<codegen::EditError>(&planned)) {
      cleanup();
      return HandlerResult::Fail("edits_invalid", Describe(*e));
    }
    const auto& changes = std::get<std::vector<codegen::FileChange>>(planned);
    codegen::WriteChanges(tree.string(), changes);
    const std::string branch = "cogo/" + task.task_id;
    std::pair<int, std::string> step = git_in(tree.string(), {"add", "-A"});
    if (step.first == 0) {
      step = git_in(tree.string(), {"commit", "--no-verify", "-q", "-m",
                                    "cogo: task " + task.task_id + " (" + std::to_string(edits.size()) + " edits)"});
    }
    std::string commit;
    if (step.first == 0) {
      step = git_in(tree.string(), {"rev-parse", "HEAD"});
      commit = step.second.substr(0, step.second.find('\n'));
    }
    if (step.first == 0) step = git_in(repo, {"update-ref", "refs/heads/" + branch, commit});
    cleanup();
    if (step.first != 0) return HandlerResult::Retry("git_failed", step.second.substr(0, 300));
    json files = json::array();
    for (const auto& c : changes) files.push_back(c.path);
    const json result = {{"taskId", task.task_id}, {"branch", branch}, {"commit", commit}, {"files", files}};
    (void)store->Write(task.task_id, ctx.message.tenant, "", {{"promote.json", result.dump(2)}},
                       {ctx.message.lease.message_id, ctx.fence()});
    logger->info("task {}: promoted as {} on {}", task.task_id, commit, branch);
    return HandlerResult::Complete(result.dump(), branch + " " + commit.substr(0, 12));
  };
}

}  // namespace cogo::buildtest
