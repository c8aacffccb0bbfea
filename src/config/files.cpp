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

std::shared_ptr<const policy::PolicyTable> LoadPolicy(const std::string& path) {
  auto parsed = policy::ParsePolicyTable(ReadFile(path));
  if (!parsed.ok()) throw std::runtime_error(path + ": " + parsed.error().ToString());
  return std::make_shared<const policy::PolicyTable>(std::move(parsed).table());
}

std::shared_ptr<const orchestrator::RoutingTable> LoadRouting(const std::string& path) {
  auto parsed = orchestrator::ParseRoutingTable(ReadFile(path));
  if (const auto* e = std::get_if<orchestrator::RoutingConfigError>(&parsed)) {
    throw std::runtime_error(path + ": " + e->ToString());
  }
  return std::make_shared<const orchestrator::RoutingTable>(
      std::get<orchestrator::RoutingTable>(std::move(parsed)));
}

}  // namespace cogo::config
