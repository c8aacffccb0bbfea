#include "cogo/codegen/edits.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "cogo/config/json_reader.h"

namespace cogo::codegen {
namespace {

EditError Err(int index, std::string reason, std::string message) {
  return EditError{index, std::move(reason), std::move(message)};
}

std::vector<std::string_view> Components(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    out.push_back(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

std::optional<EditError> CheckEdit(const Edit& edit, int index, const EditLimits& limits) {
  if (auto bad = CheckPath(edit.path, limits); std::holds_alternative<EditError>(bad)) {
    auto error = std::get<EditError>(bad);
    error.index = index;
    return error;
  }
  if (edit.search.size() > limits.max_text_bytes || edit.replace.size() > limits.max_text_bytes) {
    return Err(index, "too_large", "a search or replace text is over " + std::to_string(limits.max_text_bytes) + " bytes");
  }
  return std::nullopt;
}

std::variant<std::vector<Edit>, EditError> CheckAll(std::vector<Edit> edits, const EditLimits& limits) {
  if (edits.size() > limits.max_edits) {
    return Err(-1, "too_many_edits", std::to_string(edits.size()) + " edits; at most " + std::to_string(limits.max_edits));
  }
  for (size_t i = 0; i < edits.size(); ++i) {
    if (auto error = CheckEdit(edits[i], static_cast<int>(i), limits)) return *error;
  }
  return edits;
}

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A path line as models write it: "src/a.c", "`src/a.c`", "**src/a.c**", "src/a.c:".
std::string PathFromLine(std::string_view line) {
  line = TrimRight(line);
  while (!line.empty() && (line.front() == ' ' || line.front() == '`' || line.front() == '*')) line.remove_prefix(1);
  while (!line.empty() && (line.back() == '`' || line.back() == '*' || line.back() == ':')) line.remove_suffix(1);
  return std::string(line);
}

bool IsFence(std::string_view line) { return line.substr(0, 3) == "```"; }

// Walks `path`'s directories under `root_fd` without following symlinks; returns the parent
// directory's fd (caller closes) or an error. `create_dirs` makes missing directories.
std::variant<int, EditError> OpenParent(int root_fd, const std::vector<std::string_view>& parts, bool create_dirs) {
  int dir = dup(root_fd);
  if (dir < 0) throw std::runtime_error(std::string("dup: ") + std::strerror(errno));
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string name(parts[i]);
    int next = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create_dirs) {
      if (mkdirat(dir, name.c_str(), 0755) != 0 && errno != EEXIST) {
        close(dir);
        throw std::runtime_error("mkdir " + name + ": " + std::strerror(errno));
      }
      next = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) {
      const int err = errno;
      struct stat st {};
      const bool link = fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
      close(dir);
      if (link) return Err(-1, "symlink_in_path", "a directory on the path is a symbolic link");
      if (err == ENOENT) return Err(-1, "file_missing", "a directory on the path does not exist");
      return Err(-1, "not_a_file", "a path component is not a directory");
    }
    close(dir);
    dir = next;
  }
  return dir;
}

// The current content of `path` (nullopt: absent), refusing symlinks and non-regular files.
std::variant<std::optional<std::string>, EditError> ReadUnder(int root_fd, const std::string& path,
                                                              const EditLimits& limits) {
  const auto parts = Components(path);
  auto parent = OpenParent(root_fd, parts, false);
  if (auto* error = std::get_if<EditError>(&parent)) {
    if (error->reason == "file_missing") return std::optional<std::string>();
    return *error;
  }
  const int dir = std::get<int>(parent);
  const std::string name(parts.back());
  struct stat st {};
  if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    close(dir);
    return std::optional<std::string>();
  }
  if (S_ISLNK(st.st_mode)) {
    close(dir);
    return Err(-1, "symlink_in_path", "the file is a symbolic link");
  }
  if (!S_ISREG(st.st_mode)) {
    close(dir);
    return Err(-1, "not_a_file", "not a regular file");
  }
  if (static_cast<size_t>(st.st_size) > limits.max_file_bytes) {
    close(dir);
    return Err(-1, "too_large", "the file is over " + std::to_string(limits.max_file_bytes) + " bytes");
  }
  const int fd = openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  close(dir);
  if (fd < 0) return Err(-1, "not_a_file", std::string("cannot open: ") + std::strerror(errno));
  std::string content;
  char buffer[65536];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0) {
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > limits.max_file_bytes) break;
  }
  close(fd);
  if (content.size() > limits.max_file_bytes) return Err(-1, "too_large", "the file grew while read");
  return std::optional<std::string>(std::move(content));
}

}  // namespace

std::variant<std::monostate, EditError> CheckPath(std::string_view path, const EditLimits& limits) {
  if (path.empty() || path.size() > limits.max_path_bytes) {
    return Err(-1, "path_invalid", "a path is 1.." + std::to_string(limits.max_path_bytes) + " bytes");
  }
  if (path.front() == '/') return Err(-1, "path_absolute", "paths are relative to the repository");
  if (path.find('\0') != std::string_view::npos || path.find('\\') != std::string_view::npos) {
    return Err(-1, "path_invalid", "a path has no NUL or backslash");
  }
  for (const auto part : Components(path)) {
    if (part == "..") return Err(-1, "path_parent", "a path may not contain ..");
    if (part.empty() || part == ".") return Err(-1, "path_invalid", "a path has no empty or . component");
    if (part == ".git") return Err(-1, "path_git", "edits may not touch .git");
  }
  return std::monostate{};
}

std::variant<std::vector<Edit>, EditError> ParseEditsJson(std::string_view json_array, const EditLimits& limits) {
  std::vector<Edit> edits;
  int index = -1;
  try {
    const auto doc = config::JsonDocument::Parse(json_array, {.max_depth = 4});
    for (const auto& item : doc.root().AsArray()) {
      ++index;
      const auto o = item.AsObject();
      Edit edit;
      edit.path = o.String("path", {.max_bytes = limits.max_path_bytes});
      edit.search = o.StringOr("search", "", {.allow_empty = true, .max_bytes = limits.max_text_bytes});
      edit.replace = o.String("replace", {.allow_empty = true, .max_bytes = limits.max_text_bytes});
      o.Finish();
      edits.push_back(std::move(edit));
      if (edits.size() > limits.max_edits) break;
    }
  } catch (const config::JsonError& e) {
    return Err(index, "malformed", e.what());
  }
  return CheckAll(std::move(edits), limits);
}

std::string EditsToJson(const std::vector<Edit>& edits) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : edits) out.push_back({{"path", e.path}, {"search", e.search}, {"replace", e.replace}});
  return out.dump();
}

std::variant<std::vector<Edit>, EditError> ParseReplyBlocks(std::string_view reply, const EditLimits& limits) {
  std::vector<std::string_view> lines;
  for (size_t start = 0; start <= reply.size();) {
    const size_t nl = reply.find('\n', start);
    lines.push_back(TrimRight(reply.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start)));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  std::vector<Edit> edits;
  std::string last_path;
  std::string candidate;  // the last plain line seen outside a block
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto line = lines[i];
    if (line != "<<<<<<< SEARCH") {
      if (line.starts_with("=======") || line.starts_with(">>>>>>>") || line.starts_with("<<<<<<<")) {
        return Err(static_cast<int>(edits.size()), "malformed", "a block marker outside a SEARCH/REPLACE block (line " + std::to_string(i + 1) + ")");
      }
      if (!line.empty() && !IsFence(line)) candidate = PathFromLine(line);
      continue;
    }
    const int index = static_cast<int>(edits.size());
    Edit edit;
    edit.path = candidate.empty() ? last_path : candidate;
    if (edit.path.empty()) return Err(index, "malformed", "a SEARCH block with no file path before it");
    candidate.clear();
    std::string* section = &edit.search;
    bool closed = false;
    for (++i; i < lines.size(); ++i) {
      if (lines[i] == "=======" && section == &edit.search) {
        section = &edit.replace;
      } else if (lines[i] == ">>>>>>> REPLACE" && section == &edit.replace) {
        closed = true;
        break;
      } else if (lines[i] == "<<<<<<< SEARCH" || lines[i] == "=======" || lines[i] == ">>>>>>> REPLACE") {
        break;
      } else {
        section->append(lines[i]).push_back('\n');
      }
    }
    if (!closed) return Err(index, "malformed", "a SEARCH block is not closed by ======= and >>>>>>> REPLACE");
    last_path = edit.path;
    edits.push_back(std::move(edit));
    if (edits.size() > limits.max_edits) break;
  }
  if (edits.empty()) return Err(-1, "malformed", "the reply has no SEARCH/REPLACE block");
  return CheckAll(std::move(edits), limits);
}

std::variant<std::string, EditError> ApplyToText(const std::string& content, const Edit& edit, const EditLimits& limits) {
  const size_t first = content.find(edit.search);
  if (first == std::string::npos) return Err(-1, "search_not_found", "the search text is not in the file");
  size_t count = 1;
  for (size_t at = content.find(edit.search, first + 1); at != std::string::npos; at = content.find(edit.search, at + 1)) ++count;
  if (count > 1) return Err(-1, "search_ambiguous", "the search text occurs " + std::to_string(count) + " times; it must occur once");
  std::string out = content.substr(0, first) + edit.replace + content.substr(first + edit.search.size());
  if (out.size() > limits.max_file_bytes) return Err(-1, "too_large", "the edited file is over " + std::to_string(limits.max_file_bytes) + " bytes");
  return out;
}

std::variant<std::vector<FileChange>, EditError> PlanEdits(const std::string& root, const std::vector<Edit>& edits,
                                                           const EditLimits& limits) {
  if (auto checked = CheckAll(edits, limits); std::holds_alternative<EditError>(checked)) {
    return std::get<EditError>(checked);
  }
  const int root_fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) throw std::runtime_error("cannot open the tree " + root + ": " + std::strerror(errno));
  std::vector<FileChange> changes;
  auto find = [&](const std::string& path) -> FileChange* {
    for (auto& c : changes) {
      if (c.path == path) return &c;
    }
    return nullptr;
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    const auto& edit = edits[i];
    const int index = static_cast<int>(i);
    FileChange* change = find(edit.path);
    std::optional<std::string> current;
    if (change != nullptr) {
      current = change->content;
    } else {
      auto read = ReadUnder(root_fd, edit.path, limits);
      if (auto* error = std::get_if<EditError>(&read)) {
        close(root_fd);
        error->index = index;
        return *error;
      }
      current = std::get<std::optional<std::string>>(std::move(read));
    }
    if (edit.search.empty()) {
      if (current) {
        close(root_fd);
        return Err(index, "file_exists", "an edit with an empty search creates a file, and this one exists");
      }
      if (edit.replace.size() > limits.max_file_bytes) {
        close(root_fd);
        return Err(index, "too_large", "the new file is over " + std::to_string(limits.max_file_bytes) + " bytes");
      }
      changes.push_back({edit.path, edit.replace, true});
      continue;
    }
    if (!current) {
      close(root_fd);
      return Err(index, "file_missing", "the file does not exist");
    }
    auto applied = ApplyToText(*current, edit, limits);
    if (auto* error = std::get_if<EditError>(&applied)) {
      close(root_fd);
      error->index = index;
      return *error;
    }
    if (change == nullptr) {
      changes.push_back({edit.path, std::get<std::string>(std::move(applied)), false});
    } else {
      change->content = std::get<std::string>(std::move(applied));
    }
  }
  close(root_fd);
  return changes;
}

std::variant<std::optional<std::string>, EditError> ReadFileInTree(const std::string& root, const std::string& path,
                                                                  const EditLimits& limits) {
  if (auto bad = CheckPath(path, limits); std::holds_alternative<EditError>(bad)) return std::get<EditError>(bad);
  const int root_fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) throw std::runtime_error("cannot open the tree " + root + ": " + std::strerror(errno));
  auto read = ReadUnder(root_fd, path, limits);
  close(root_fd);
  return read;
}

void WriteChanges(const std::string& root, const std::vector<FileChange>& changes) {
  const int root_fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) throw std::runtime_error("cannot open the tree " + root + ": " + std::strerror(errno));
  for (const auto& change : changes) {
    const auto parts = Components(change.path);
    auto parent = OpenParent(root_fd, parts, true);
    if (auto* error = std::get_if<EditError>(&parent)) {
      close(root_fd);
      throw std::runtime_error(change.path + ": " + error->message);
    }
    const int dir = std::get<int>(parent);
    const std::string name(parts.back());
    const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | (change.created ? O_EXCL : 0);
    const int fd = openat(dir, name.c_str(), flags, 0644);
    close(dir);
    if (fd < 0) {
      close(root_fd);
      throw std::runtime_error(change.path + ": " + std::strerror(errno));
    }
    size_t written = 0;
    while (written < change.content.size()) {
      const ssize_t n = write(fd, change.content.data() + written, change.content.size() - written);
      if (n < 0) {
        close(fd);
        close(root_fd);
        throw std::runtime_error(change.path + ": write: " + std::strerror(errno));
      }
      written += static_cast<size_t>(n);
    }
    close(fd);
  }
  close(root_fd);
}

}  // namespace cogo::codegen
