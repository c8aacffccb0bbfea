#include "cogo/auth/secret.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cogo::auth {

std::string RequiredSecret(const std::string& name) {
  if (const char* value = std::getenv(name.c_str()); value != nullptr && *value != '\0') return value;
  const std::string file_variable = name + "_FILE";
  const char* path = std::getenv(file_variable.c_str());
  if (path == nullptr || *path == '\0') {
    throw std::invalid_argument(name + " is not set (nor " + file_variable + ")");
  }
  struct stat info {};
  if (::stat(path, &info) != 0) throw std::invalid_argument(file_variable + ": cannot read the file");
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    throw std::invalid_argument(file_variable + ": the file must not be accessible by group or others (chmod 600)");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string secret = contents.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (!in || secret.empty()) throw std::invalid_argument(file_variable + ": the file is unreadable or empty");
  return secret;
}

}  // namespace cogo::auth
