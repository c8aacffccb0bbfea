// How producers key their messages: the shard a tenant's messages go to, what an idempotency
// key may be, and what a route's service and role names may be. Shared by every producer that takes them from outside (the edge, the
// brain's REST API, the workflow API). Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace cogo::config {
class JsonObject;
}

namespace cogo::bus {

// Stable across processes, hosts and releases (FNV-1a 64 of the tenant) modulo `shards`;
// shards <= 1 -> 0.
[[nodiscard]] int ShardForTenant(std::string_view tenant, int shards);

// An Idempotency-Key header value is 1..200 printable ASCII characters.
[[nodiscard]] bool ValidIdempotencyKey(std::string_view key);

// A service or role name is not empty and has no '/': a wake-up names its route
// "service/role/shard" (sql/001, sql/005), and a name with a slash could not be read back, so
// its workers would never be woken (they would only find work by polling).
[[nodiscard]] bool ValidRouteName(std::string_view name);

// A wake-up's payload, "service/role/shard" (cogo_wake in sql/005 and sql/028): the route and
// shard it names, or nullopt when it is not of that form. The views point into `payload`.
struct WakeUp {
  std::string_view service;
  std::string_view role;
  int shard = 0;
};
[[nodiscard]] std::optional<WakeUp> ParseWakeUp(std::string_view payload);

// "service \"a/b\" must be non-empty and must not contain '/' ...": why `name` is refused.
[[nodiscard]] std::string DescribeRouteNameRule(std::string_view what, std::string_view name);

// Reads `key` of a config object as a route name (1..max_bytes bytes, ValidRouteName); a
// name that breaks the rule fails the read at `<path>.<key>` (config::JsonError, invalid_name).
[[nodiscard]] std::string ReadRouteName(const config::JsonObject& object, const char* key,
                                        std::size_t max_bytes = std::numeric_limits<std::size_t>::max());

}  // namespace cogo::bus
