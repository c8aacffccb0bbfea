// The bus API: every state change of a message, each one statement and its bus_events row in
// the same transaction. A Bus wraps one connection and is used by one thread at a time; the
// connection must outlive it. Methods without a transaction argument run their one statement
// in autocommit; the overloads taking one let a caller combine steps atomically.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>

#include "cogo/bus/message.h"

namespace cogo::db {
class PipelinedTransaction;
}

namespace cogo::bus {

struct BusLimits {
  size_t max_payload_bytes = 1 << 20;
  size_t max_batch = 10000;
};

// Why a message was refused before anything was written. `reason` is machine-readable
// (empty_service, empty_role, invalid_route_name, empty_tenant, negative_shard, invalid_json,
// payload_not_object, payload_too_large, bad_max_attempts, batch_too_large); `detail` is for
// people.
struct Rejection {
  std::string reason;
  std::string detail;
};

class InvalidMessage : public std::invalid_argument {
 public:
  explicit InvalidMessage(Rejection rejection);
  [[nodiscard]] const Rejection& rejection() const { return rejection_; }

 private:
  Rejection rejection_;
};

[[nodiscard]] std::optional<Rejection> Validate(const PublishRequest& request,
                                                const BusLimits& limits);

struct ClaimRequest {
  std::string owner;  // lease owner; a registered worker's id clears its idle flag on success
  std::string service;
  std::string role;
  std::vector<int> shards{0};
  int limit = 1;
  int64_t lease_ms = 30000;
};

// What a claim found. When it found nothing: how long until the earliest delayed message of the
// route's shards falls due, measured by the database's clock (nullopt: none is waiting), so an
// idle worker can wait exactly that long and no host's clock enters.
struct ClaimResult {
  std::vector<ClaimedMessage> messages;
  std::optional<std::chrono::milliseconds> next_due;
};

struct ReclaimCounts {
  int64_t requeued = 0;
  int64_t dead_lettered = 0;
};

struct WorkerInfo {
  std::string worker_id;
  std::string service;
  std::string role;
  std::vector<int> shards;
  std::string host;
  int pid = 0;
};

// Whether `error` is QueueLockAllLeases or QueueCompleteAll finding a lease gone (the
// transaction is aborted).
[[nodiscard]] bool IsLeaseLost(const std::exception& error);

class Bus {
 public:
  explicit Bus(pqxx::connection& conn, BusLimits limits = {});

  // Publishing. Throws InvalidMessage (nothing written) when a request fails Validate.
  Published Publish(const PublishRequest& request);
  Published Publish(pqxx::transaction_base& txn, const PublishRequest& request);
  std::vector<Published> PublishBatch(const std::vector<PublishRequest>& requests);
  std::vector<Published> PublishBatch(pqxx::transaction_base& txn,
                                      const std::vector<PublishRequest>& requests);

  // Claims up to `limit` due messages of the route, highest priority first, oldest first.
  std::vector<ClaimedMessage> Claim(const ClaimRequest& request);
  // The same claim, and in the same message a second statement that says when the route's next
  // delayed message falls due (the idle protocol's waits end no later).
  ClaimResult ClaimOrNextDue(const ClaimRequest& request);

  // Completion and failure check the lease: false / lease_lost when it no longer matches.
  [[nodiscard]] bool Complete(const Completion& completion);
  [[nodiscard]] bool Complete(pqxx::transaction_base& txn, const Completion& completion);
  // One transaction for many completions; result[i] says whether completions[i] held its lease.
  [[nodiscard]] std::vector<bool> CompleteBatch(const std::vector<Completion>& completions);
  [[nodiscard]] std::vector<bool> CompleteBatch(pqxx::transaction_base& txn,
                                                const std::vector<Completion>& completions);
  [[nodiscard]] FailOutcome Fail(const Failure& failure);
  [[nodiscard]] FailOutcome Fail(pqxx::transaction_base& txn, const Failure& failure);

  // Extends the leases that still hold; result[i] says whether leases[i] did (else it is lost).
  [[nodiscard]] std::vector<bool> Heartbeat(const std::vector<Lease>& leases, int64_t lease_ms);
  // Every lease `owner` holds (a worker's view after its claim connection broke).
  [[nodiscard]] std::vector<Lease> LeasesOf(const std::string& owner);
  // Gives a running message back to the queue without counting the attempt.
  [[nodiscard]] bool Release(const Lease& lease);
  [[nodiscard]] bool Release(pqxx::transaction_base& txn, const Lease& lease);

  // Locks the messages whose lease still holds until the transaction ends; result[i] says
  // whether leases[i] held. What the caller then writes about them cannot be orphaned.
  [[nodiscard]] std::vector<bool> LockLeases(pqxx::transaction_base& txn,
                                             const std::vector<Lease>& leases);

  // Domain events on a message's trail, in the caller's transaction.
  void AddEvents(pqxx::transaction_base& txn, const std::vector<AuditEvent>& events);

  // The same statements queued on a db::PipelinedTransaction, several to a round trip: each
  // Queue* returns the position of its result, which the matching Read* interprets. Publish
  // validates first (throws InvalidMessage) and takes at most limits().max_batch requests; a
  // request whose idempotency key an earlier message holds reads created = false, id 0 (the
  // lookup of that message is PublishBatch's extra statement).
  size_t QueueLockLeases(db::PipelinedTransaction& t, const std::vector<Lease>& leases);
  // The lock that fails (IsLeaseLost) unless every lease holds: what is queued after it may
  // assume they all do, and COMMIT may ride in the same message.
  size_t QueueLockAllLeases(db::PipelinedTransaction& t, const std::vector<Lease>& leases);
  size_t QueueAddEvents(db::PipelinedTransaction& t, const std::vector<AuditEvent>& events);
  size_t QueuePublish(db::PipelinedTransaction& t, const std::vector<PublishRequest>& requests);
  size_t QueueComplete(db::PipelinedTransaction& t, const std::vector<Completion>& completions);
  // The completions all or nothing: fails (IsLeaseLost) unless every lease holds, so what was
  // queued before it in the transaction (its children and events) needs no lock of its own.
  size_t QueueCompleteAll(db::PipelinedTransaction& t, const std::vector<Completion>& completions);
  size_t QueueFail(db::PipelinedTransaction& t, const Failure& failure);
  size_t QueueRelease(db::PipelinedTransaction& t, const Lease& lease);
  // What a lock or complete statement returned: result[i] says whether leases[i] held.
  [[nodiscard]] static std::vector<bool> ReadHeld(const pqxx::result& rows, const std::vector<Lease>& leases);
  [[nodiscard]] static std::vector<Published> ReadPublished(const pqxx::result& rows, size_t count);
  [[nodiscard]] static FailOutcome ReadFail(const pqxx::result& rows);

  // Operator actions.
  [[nodiscard]] bool Cancel(int64_t id, const std::string& reason);
  [[nodiscard]] bool Cancel(pqxx::transaction_base& txn, int64_t id, const std::string& reason);
  // Cancels the route's queued messages of `tenant` published with these idempotency keys (a
  // timer that can no longer matter); running and finished ones are left alone. Returns how
  // many it cancelled.
  int64_t CancelQueued(pqxx::transaction_base& txn, const std::string& service, const std::string& role,
                       const std::string& tenant, const std::vector<std::string>& idempotency_keys,
                       const std::string& reason);
  ReclaimCounts Reclaim(int limit);
  [[nodiscard]] bool Retry(int64_t id);  // a dead, failed or cancelled message, queued afresh
  int64_t RequeueDead(const std::string& service, const std::string& role);  // "" = any

  // Worker registry (bus_workers) and the idle protocol behind wake-ups.
  void RegisterWorker(const WorkerInfo& info);
  void TouchWorker(const std::string& worker_id);
  void UnregisterWorker(const std::string& worker_id);
  // The idle protocol behind wake-ups (sql/005_wake_locks.sql), on a worker's claim connection.
  // AnnounceIdle shows the worker idle and tries to take the wake locks of its shards for this
  // session: `sentinel` (all taken: producers will NOTIFY for new work on them), `covered`
  // (some taken, the rest held by another worker, whose wake-ups reach this worker too) and
  // `standby` (all held by others, nothing taken) all mean: claim once more, then wait, since
  // work committed before the locks was not announced. `busy`: producers are mid-commit,
  // nothing is held; look again very soon. LeaveIdle gives the locks back and NOTIFYs the
  // shards, so waiting workers take over at once.
  enum class IdleResult { sentinel, covered, standby, busy };
  [[nodiscard]] IdleResult AnnounceIdle(const std::string& worker_id, const std::string& service,
                                        const std::string& role, const std::vector<int>& shards);
  void LeaveIdle(const std::string& service, const std::string& role,
                 const std::vector<int>& shards);
  // The NOTIFY channel of the route's wake-ups (sql/028_wake_channel_per_route.sql), which the
  // WakeHub of a process serving the route LISTENs on.
  [[nodiscard]] std::string WakeChannel(const std::string& service, const std::string& role);

  [[nodiscard]] const BusLimits& limits() const { return limits_; }
  [[nodiscard]] pqxx::connection& connection() { return conn_; }

 private:
  void ValidateBatch(const std::vector<PublishRequest>& requests) const;

  pqxx::connection& conn_;
  BusLimits limits_;
};

}  // namespace cogo::bus
