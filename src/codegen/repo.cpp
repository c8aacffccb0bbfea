#include "cogo/codegen/repo.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace cogo::codegen {
namespace {

namespace fs = std::filesystem;

bool Inside(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> ResolveRepo(const std::string& repo, const std::vector<std::string>& roots) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(repo, ec);
  if (ec || !fs::is_directory(canonical, ec)) return std::nullopt;
  for (const auto& root : roots) {
    const fs::path r = fs::canonical(root, ec);
    if (!ec && Inside(canonical, r)) return canonical.string();
  }
  return std::nullopt;
}

std::vector<std::string> ListRepoFiles(const std::string& root, std::size_t max_files) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool dir = it->is_directory() && !it->is_symlink();
    if (name.front() == '.' || (dir && name.starts_with("build"))) {
      if (dir) it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink() || !it->is_regular_file()) continue;
    out.push_back(fs::relative(it->path(), root).string());
    if (out.size() >= max_files) break;
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ChooseContextFiles(std::string_view instruction,
                                            const std::vector<std::pair<std::string, std::size_t>>& sized_files,
                                            const ContextLimits& limits) {
  std::vector<std::string> chosen;
  std::size_t total = 0;
  auto take = [&](const std::string& path, std::size_t size) {
    if (std::find(chosen.begin(), chosen.end(), path) != chosen.end()) return;
    const std::size_t shown = std::min(size, limits.max_file_bytes);
    if (total + shown > limits.max_total_bytes) return;
    total += shown;
    chosen.push_back(path);
  };
  for (const auto& [path, size] : sized_files) {
    const std::string name = fs::path(path).filename().string();
    if (instruction.find(path) != std::string_view::npos || instruction.find(name) != std::string_view::npos) take(path, size);
  }
  auto rest = sized_files;
  std::stable_sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  for (const auto& [path, size] : rest) take(path, size);
  return chosen;
}

std::vector<ContextFile> GatherContext(const std::string& root, std::string_view instruction,
                                       const std::vector<std::string>& listed, const ContextLimits& limits) {
  std::vector<std::pair<std::string, std::size_t>> sized;
  std::error_code ec;
  for (const auto& path : listed) {
    const auto size = fs::file_size(fs::path(root) / path, ec);
    if (!ec) sized.emplace_back(path, static_cast<std::size_t>(size));
  }
  std::vector<ContextFile> out;
  for (const auto& path : ChooseContextFiles(instruction, sized, limits)) {
    std::ifstream in(fs::path(root) / path, std::ios::binary);
    std::string content(limits.max_file_bytes + 1, '\0');
    in.read(content.data(), static_cast<std::streamsize>(content.size()));
    content.resize(static_cast<std::size_t>(in.gcount()));
    const bool truncated = content.size() > limits.max_file_bytes;
    if (truncated) content.resize(limits.max_file_bytes);
    out.push_back({path, std::move(content), truncated});
  }
  return out;
}

}  // namespace cogo::codegen
