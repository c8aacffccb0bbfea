// Edits: the one format in which a patch travels between codegen, build-test and promote
// (`artifacts/<taskId>/edits.json`, docs/codegen.md), its parsing from JSON and from a model's
// reply, and its checked application to a directory tree. Thread-safety: pure functions, except
// PlanEdits / WriteChanges, which read and write the tree they are given (one caller per tree).
//
// Format. An edit is `{"path", "search", "replace"}`: the file at `path` (relative, inside the
// tree) must contain `search` exactly once, and that occurrence becomes `replace`. An empty
// `search` creates `path`, which must not exist, with `replace` as its content. Edits apply in
// order, all or nothing. A model writes the same thing as aider-style SEARCH/REPLACE blocks:
//
//   src/clamp.c
//   <<<<<<< SEARCH
//   return lo;
//   =======
//   return hi;
//   >>>>>>> REPLACE
//
// Why search/replace rather than a unified diff: the model must quote the text it changes, which
// is checked byte for byte (found exactly once), while diffs from models routinely carry wrong
// line numbers and hunk counts that appliers then "fuzz" into places nobody checked.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cogo::codegen {

struct Edit {
  std::string path;
  std::string search;   // empty: create the file
  std::string replace;  // the replacement, or the new file's content
  friend bool operator==(const Edit&, const Edit&) = default;
};

struct EditLimits {
  std::size_t max_edits = 64;
  std::size_t max_path_bytes = 256;
  std::size_t max_text_bytes = 256 * 1024;   // one search or replace text
  std::size_t max_file_bytes = 1024 * 1024;  // a file before or after editing
};

// Why an edit (or a list of them) was refused. `index` is the edit's position (-1: the list).
// Reasons: malformed (not the documented shape), too_many_edits, path_invalid (empty, too long,
// NUL, backslash, empty or "." component), path_absolute, path_parent (a ".." component),
// path_git (inside .git), symlink_in_path, not_a_file, file_missing, file_exists,
// search_not_found, search_ambiguous, too_large. Messages never quote file contents.
struct EditError {
  int index = -1;
  std::string reason;
  std::string message;
  friend bool operator==(const EditError&, const EditError&) = default;
};

// Pure: the lexical checks of a path (everything except symlinks, which need the tree).
[[nodiscard]] std::variant<std::monostate, EditError> CheckPath(std::string_view path,
                                                                const EditLimits& limits);

// Pure: a JSON array of edits (edits.json's "edits", or a task's `parameters.edits`), read with
// the strict reader: unknown keys, wrong types and over-limit sizes are refused; paths are
// checked lexically.
[[nodiscard]] std::variant<std::vector<Edit>, EditError> ParseEditsJson(std::string_view json_array,
                                                                        const EditLimits& limits);
// The array back as JSON text.
[[nodiscard]] std::string EditsToJson(const std::vector<Edit>& edits);

// Pure: the SEARCH/REPLACE blocks of a model's reply. Text outside blocks (explanations, code
// fences) is ignored; a reply with no block, an unterminated block or a block without a path is
// `malformed`. Paths are checked lexically.
[[nodiscard]] std::variant<std::vector<Edit>, EditError> ParseReplyBlocks(std::string_view reply,
                                                                          const EditLimits& limits);

// Pure: `content` with `search` (found exactly once) replaced. Errors as above, index -1.
[[nodiscard]] std::variant<std::string, EditError> ApplyToText(const std::string& content,
                                                               const Edit& edit,
                                                               const EditLimits& limits);

// A file's new content, after every edit aimed at it.
struct FileChange {
  std::string path;
  std::string content;
  bool created = false;
};

// Reads the files the edits name under `root` (refusing a symlink anywhere on a path and
// anything but regular files) and applies the edits in memory, in order. Nothing is written.
[[nodiscard]] std::variant<std::vector<FileChange>, EditError> PlanEdits(const std::string& root,
                                                                         const std::vector<Edit>& edits,
                                                                         const EditLimits& limits);
// The content of the regular file `path` under `root` (nullopt: absent), read without following
// a symlink anywhere on the path, at most limits.max_file_bytes (else too_large).
[[nodiscard]] std::variant<std::optional<std::string>, EditError> ReadFileInTree(const std::string& root,
                                                                                const std::string& path,
                                                                                const EditLimits& limits);
// Writes planned changes under `root`, creating parent directories, never following a
// symlink. Throws std::runtime_error on an I/O failure.
void WriteChanges(const std::string& root, const std::vector<FileChange>& changes);

}  // namespace cogo::codegen
