#include "cogo/bus/keys.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>

#include "cogo/config/json_reader.h"

namespace cogo::bus {

int ShardForTenant(std::string_view tenant, int shards) {
  if (shards <= 1) return 0;
  uint64_t hash = 14695981039346656037ULL;
  for (char c : tenant) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return static_cast<int>(hash % static_cast<uint64_t>(shards));
}

bool ValidIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > 200) return false;
  return std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

bool ValidRouteName(std::string_view name) {
  return !name.empty() && name.find('/') == std::string_view::npos;
}

std::optional<WakeUp> ParseWakeUp(std::string_view payload) {
  const auto first = payload.find('/');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = payload.find('/', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  WakeUp wake{payload.substr(0, first), payload.substr(first + 1, second - first - 1), 0};
  const std::string_view shard = payload.substr(second + 1);
  const auto [end, error] = std::from_chars(shard.data(), shard.data() + shard.size(), wake.shard);
  if (error != std::errc() || end != shard.data() + shard.size() || !ValidRouteName(wake.service) ||
      !ValidRouteName(wake.role)) {
    return std::nullopt;
  }
  return wake;
}

std::string DescribeRouteNameRule(std::string_view what, std::string_view name) {
  return std::string(what) + " \"" + std::string(name) +
         "\" must be non-empty and must not contain '/' (wake-ups name a route service/role/shard)";
}

std::string ReadRouteName(const config::JsonObject& object, const char* key, std::size_t max_bytes) {
  std::string name = object.String(key, {false, max_bytes});
  if (!ValidRouteName(name)) {
    object.FailAt(key, config::JsonReason::invalid_name, DescribeRouteNameRule(key, name));
  }
  return name;
}

}  // namespace cogo::bus
