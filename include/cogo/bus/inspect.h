// Read-side queries for operators and APIs: a message with its event trail, queue depth per
// route and status, live workers. Results are JSON text built by PostgreSQL, so callers need no
// row mapping. Functions use the caller's transaction (read-only is enough).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <pqxx/transaction_base>

namespace cogo::bus {

// The message row as a JSON object (payload and result included), or nullopt when absent.
[[nodiscard]] std::optional<std::string> MessageJson(pqxx::transaction_base& txn, int64_t id);

// The message's trail (bus_trail: its bus_events plus a `claimed` entry per attempt, the claim
// of an ended attempt carrying no id of its own), oldest first, as a JSON array.
[[nodiscard]] std::string EventsJson(pqxx::transaction_base& txn, int64_t id);

// [{service, role, status, count, oldest_queued_age_s}] over every route.
[[nodiscard]] std::string StatusJson(pqxx::transaction_base& txn);

// Workers seen within `within_s` seconds: [{worker_id, service, role, shards, host, pid,
// idle, last_seen_age_s}].
[[nodiscard]] std::string WorkersJson(pqxx::transaction_base& txn, int within_s = 120);

}  // namespace cogo::bus
