// Reading a config file whole. Each area parses its own files (policy::LoadPolicyFile,
// orchestrator::LoadRoutingFile) with the strict reader in config/json_reader.h, so config/
// depends on no other area. Thread-safe: a free function.
#pragma once

#include <string>

namespace cogo::config {

// The whole file; throws std::runtime_error when it cannot be read.
[[nodiscard]] std::string ReadFile(const std::string& path);

}  // namespace cogo::config
