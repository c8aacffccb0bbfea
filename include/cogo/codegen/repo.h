// The target repositories a task may name, and what codegen shows a model of one. A task's
// `repo` is a path that must resolve (symlinks followed) inside one of the operator's repository
// roots (--repo-root): a task cannot make a worker read, copy or commit to anything else.
// Thread-safety: pure functions, and readers of the directory they are given.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cogo::codegen {

// The canonical path of `repo` when it is an existing directory inside (or equal to) one of
// `roots` (themselves canonicalised); nullopt otherwise.
[[nodiscard]] std::optional<std::string> ResolveRepo(const std::string& repo, const std::vector<std::string>& roots);

// Regular files under `root`, relative, sorted; hidden entries (.git, .cache, ...) and `build*`
// directories skipped, symlinks not followed; at most `max_files`.
[[nodiscard]] std::vector<std::string> ListRepoFiles(const std::string& root, std::size_t max_files);

struct ContextFile {
  std::string path;
  std::string content;  // cut at the per-file cap
  bool truncated = false;
};

struct ContextLimits {
  std::size_t max_listed_files = 300;
  std::size_t max_file_bytes = 32 * 1024;
  std::size_t max_total_bytes = 96 * 1024;
};

// Pure: which listed files to show for an instruction: those whose path or file name the
// instruction mentions first, then the smallest of the rest, while the total cap allows.
[[nodiscard]] std::vector<std::string> ChooseContextFiles(std::string_view instruction,
                                                          const std::vector<std::pair<std::string, std::size_t>>& sized_files,
                                                          const ContextLimits& limits);

// The chosen files read from `root` (bounded as ContextLimits says).
[[nodiscard]] std::vector<ContextFile> GatherContext(const std::string& root, std::string_view instruction,
                                                     const std::vector<std::string>& listed, const ContextLimits& limits);

}  // namespace cogo::codegen
