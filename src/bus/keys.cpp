#include "cogo/bus/keys.h"

#include <algorithm>
#include <cstdint>

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

}  // namespace cogo::bus
