// Task artifacts on disk: `<root>/<taskId>/edits.json`, `<root>/<taskId>/build-test/report.json`,
// logs, prompts and replies. The first writer of a task records its tenant (`.tenant`); writers
// of another tenant are refused, and readers see a task only within their tenant scope. Each
// part of a task (the task directory, `build-test/`) remembers its last writer's (message id,
// fencing token) in `.writer`: an older claim, whose lease was lost, cannot overwrite the work of
// the claim that replaced it. Files are written whole (temporary file + rename).
// Thread-safety: concurrent writers of one task serialise on a per-task lock file (flock), so
// several processes may share one root.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cogo::artifacts {

// 1..128 of [A-Za-z0-9._-], not starting with '.' or '-', no "..", not ending ".lock": safe as a
// directory name and as a git branch component (cogo/<taskId>).
[[nodiscard]] bool ValidTaskId(std::string_view task_id);

struct Writer {
  int64_t message_id = 0;
  int64_t fence = 0;
};

enum class WriteOutcome { written, stale_writer, other_tenant };
[[nodiscard]] const char* WriteOutcomeName(WriteOutcome outcome);

struct ArtifactFile {
  std::string path;  // relative to the task directory, e.g. "build-test/report.json"
  int64_t bytes = 0;
};

class ArtifactStore {
 public:
  explicit ArtifactStore(std::string root);  // created on first write

  // Writes `files` (name -> content) into `<root>/<task_id>/<part>` (part "" or "build-test").
  // Throws std::invalid_argument on a bad task id or name, std::runtime_error on I/O failures.
  [[nodiscard]] WriteOutcome Write(const std::string& task_id, const std::string& tenant, const std::string& part,
                                   const std::vector<std::pair<std::string, std::string>>& files,
                                   const Writer& writer) const;

  // The task's files (bookkeeping files hidden) when the task exists and `tenant_scope` (nullopt:
  // every tenant) may see it.
  [[nodiscard]] std::optional<std::vector<ArtifactFile>> List(const std::string& task_id,
                                                              const std::optional<std::string>& tenant_scope) const;
  // One file's content, same visibility; nullopt for anything else (a symlink, a directory, a
  // bookkeeping file, a path with "..", a file over `max_bytes`).
  [[nodiscard]] std::optional<std::string> Read(const std::string& task_id, const std::string& relative,
                                                const std::optional<std::string>& tenant_scope,
                                                size_t max_bytes = 8 << 20) const;

  [[nodiscard]] const std::string& root() const { return root_; }
  // "<root>/<task_id>" (no checks).
  [[nodiscard]] std::string TaskDir(const std::string& task_id) const;

 private:
  [[nodiscard]] bool Visible(const std::string& task_id, const std::optional<std::string>& tenant_scope) const;
  std::string root_;
};

}  // namespace cogo::artifacts
