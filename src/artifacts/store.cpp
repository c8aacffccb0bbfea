#include "cogo/artifacts/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cogo::artifacts {
namespace {

namespace fs = std::filesystem;

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

std::optional<std::string> ReadSmall(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteWhole(const fs::path& path, const std::string& content) {
  const fs::path temp = path.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) throw std::runtime_error("cannot write " + temp.string());
  }
  fs::rename(temp, path);
}

// Holds an exclusive flock on `<dir>/.lock` while alive.
class TaskLock {
 public:
  explicit TaskLock(const fs::path& dir) {
    fd_ = open((dir / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0 || flock(fd_, LOCK_EX) != 0) throw std::runtime_error("cannot lock " + dir.string() + ": " + std::strerror(errno));
  }
  ~TaskLock() { close(fd_); }
  TaskLock(const TaskLock&) = delete;
  TaskLock& operator=(const TaskLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

bool ValidTaskId(std::string_view task_id) {
  if (!ValidName(task_id) || task_id.front() == '-') return false;
  return task_id.find("..") == std::string_view::npos && !task_id.ends_with(".lock");
}

const char* WriteOutcomeName(WriteOutcome outcome) {
  switch (outcome) {
    case WriteOutcome::written: return "written";
    case WriteOutcome::stale_writer: return "stale_writer";
    case WriteOutcome::other_tenant: return "other_tenant";
  }
  return "unknown";
}

ArtifactStore::ArtifactStore(std::string root) : root_(std::move(root)) {}

std::string ArtifactStore::TaskDir(const std::string& task_id) const { return (fs::path(root_) / task_id).string(); }

WriteOutcome ArtifactStore::Write(const std::string& task_id, const std::string& tenant, const std::string& part,
                                  const std::vector<std::pair<std::string, std::string>>& files,
                                  const Writer& writer) const {
  if (!ValidTaskId(task_id)) throw std::invalid_argument("invalid task id");
  if (!part.empty() && !ValidName(part)) throw std::invalid_argument("invalid artifact part");
  const fs::path task = fs::path(root_) / task_id;
  fs::create_directories(task);
  TaskLock lock(task);
  const auto owner = ReadSmall(task / ".tenant");
  if (owner && *owner != tenant) return WriteOutcome::other_tenant;
  if (!owner) WriteWhole(task / ".tenant", tenant);
  const fs::path dir = part.empty() ? task : task / part;
  fs::create_directories(dir);
  if (fs::is_symlink(dir)) throw std::runtime_error("artifact directory is a symlink");
  if (const auto last = ReadSmall(dir / ".writer")) {
    int64_t message = 0, fence = 0;
    std::istringstream(*last) >> message >> fence;
    if (std::pair(writer.message_id, writer.fence) < std::pair(message, fence)) return WriteOutcome::stale_writer;
  }
  for (const auto& [name, content] : files) {
    if (!ValidName(name)) throw std::invalid_argument("invalid artifact name");
    WriteWhole(dir / name, content);
  }
  WriteWhole(dir / ".writer", std::to_string(writer.message_id) + " " + std::to_string(writer.fence));
  return WriteOutcome::written;
}

bool ArtifactStore::Visible(const std::string& task_id, const std::optional<std::string>& tenant_scope) const {
  if (!ValidTaskId(task_id)) return false;
  const auto owner = ReadSmall(fs::path(root_) / task_id / ".tenant");
  return owner && (!tenant_scope || *tenant_scope == *owner);
}

std::optional<std::vector<ArtifactFile>> ArtifactStore::List(const std::string& task_id,
                                                             const std::optional<std::string>& tenant_scope) const {
  if (!Visible(task_id, tenant_scope)) return std::nullopt;
  const fs::path task = fs::path(root_) / task_id;
  std::vector<ArtifactFile> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(task, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (name.front() == '.') {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file() || it->is_symlink()) continue;
    out.push_back({fs::relative(it->path(), task).string(), static_cast<int64_t>(it->file_size())});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  return out;
}

std::optional<std::string> ArtifactStore::Read(const std::string& task_id, const std::string& relative,
                                               const std::optional<std::string>& tenant_scope, size_t max_bytes) const {
  if (!Visible(task_id, tenant_scope)) return std::nullopt;
  fs::path path = fs::path(root_) / task_id;
  size_t start = 0;
  while (start <= relative.size()) {
    const size_t slash = relative.find('/', start);
    const std::string part = relative.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!ValidName(part)) return std::nullopt;  // also refuses "", ".", ".." and dotfiles
    path /= part;
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0 || S_ISLNK(st.st_mode)) return std::nullopt;
    if (slash == std::string::npos) {
      if (!S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) > max_bytes) return std::nullopt;
      return ReadSmall(path);
    }
    if (!S_ISDIR(st.st_mode)) return std::nullopt;
    start = slash + 1;
  }
  return std::nullopt;
}

}  // namespace cogo::artifacts
