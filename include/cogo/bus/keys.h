// How producers key their messages: the shard a tenant's messages go to, and what an
// idempotency key may be. Shared by every producer that takes them from outside (the edge, the
// brain's REST API, the workflow API). Pure functions: thread-safe.
#pragma once

#include <string_view>

namespace cogo::bus {

// Stable across processes, hosts and releases (FNV-1a 64 of the tenant) modulo `shards`;
// shards <= 1 -> 0.
[[nodiscard]] int ShardForTenant(std::string_view tenant, int shards);

// An Idempotency-Key header value is 1..200 printable ASCII characters.
[[nodiscard]] bool ValidIdempotencyKey(std::string_view key);

}  // namespace cogo::bus
