#include "cogo/config/files.h"

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace cogo::config {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace cogo::config
