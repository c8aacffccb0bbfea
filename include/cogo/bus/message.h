// Value types of the bus: what a producer publishes, what a consumer claims, and the lease that
// proves a consumer still owns a running message. Plain data; no thread-safety concerns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cogo::bus {

// A message's route. Workers subscribe to (service, role, shard set); tenant travels with it.
struct Route {
  std::string service;
  std::string role;
  int shard = 0;
};

struct PublishRequest {
  std::string service;
  std::string role;
  int shard = 0;
  std::string tenant;
  std::string payload_json;     // a JSON object (Validate refuses anything else)
  int priority = 0;             // higher is claimed first
  int max_attempts = 5;         // claims before a retryable failure becomes a dead letter
  std::string idempotency_key;  // empty: none; else a repeat returns the first message
  std::string correlation_id;   // empty: none; ties the message to a workflow run or request
  int64_t delay_ms = 0;         // not claimable before now() + delay
  int64_t parent_id = 0;        // 0: none; else the message this one continues (its trail
                                // then records the child's enqueue and outcome)
};

struct Published {
  int64_t id = 0;
  bool created = false;  // false: an earlier message with the same idempotency key
};

// Proof of ownership of a running message: the claimer and which claim of the message it was.
// `fence` is the fencing token: every claim of the message raises it and nothing lowers it
// (sql/009_fencing.sql), so a stale lease never matches, even one held by the same worker after
// a cancel and an operator retry. `attempt` is the retry budget spent (a release gives one
// back, an operator retry starts afresh): it never proves ownership.
struct Lease {
  int64_t message_id = 0;
  std::string owner;
  int attempt = 0;
  int64_t fence = 0;
};

struct ClaimedMessage {
  Lease lease;
  Route route;
  std::string tenant;
  std::string payload_json;
  int priority = 0;
  int max_attempts = 0;
  std::string correlation_id;
  double created_at_epoch = 0;  // seconds, database clock
  double claimed_at_epoch = 0;  // seconds, database clock: the claim's now()
  // When the assignment's TTL ends, seconds, database clock: the deadline the bus stored at
  // publish (cogo_assignment_deadline, sql/003 and 018: the one TTL rule). nullopt: the payload
  // has no usable TTL.
  std::optional<double> ttl_deadline_epoch;
};

// What a consumer reports when it is done with a message.
struct Completion {
  Lease lease;
  std::string result_json;  // empty: no result document
  std::string snippet;      // short human-readable summary
  std::string url;          // where a larger result lives, if anywhere
};

// infrastructure: our own process could not run the message (its database connection was
// lost, a claim's answer was lost): requeued with the attempt given back, at most
// kAttemptsGivenBack times per message; after that it is an ordinary retryable failure.
enum class FailureKind { retryable, permanent, infrastructure };
inline constexpr int kAttemptsGivenBack = 10;

struct Failure {
  Lease lease;
  std::string error;
  FailureKind kind = FailureKind::retryable;
  int64_t retry_delay_ms = 0;  // used when the message is requeued
};

// A domain event for a message's trail, beside the bus's own lifecycle events.
struct AuditEvent {
  int64_t message_id = 0;   // 0 in a HandlerResult: the handled message
  std::string event;        // e.g. execute_retry
  std::string detail_json;  // a JSON object, or empty
};

// Where a failure left the message.
enum class FailOutcome { requeued, dead_lettered, failed, lease_lost };

[[nodiscard]] const char* FailOutcomeName(FailOutcome outcome);

}  // namespace cogo::bus
