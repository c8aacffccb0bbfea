#include "cogo/bus/bus.h"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <pqxx/except>
#include <pqxx/result>
#include <pqxx/nontransaction>

#include "bus/statements.h"
#include "cogo/bus/keys.h"
#include "cogo/db/connection.h"
#include "cogo/db/pipelined_transaction.h"
#include "cogo/db/reconnect.h"

namespace cogo::bus {
namespace {

using nlohmann::json;

std::string Quote(const std::string& text) { return json(text).dump(); }

// Null for the empty string: optional text columns stay NULL rather than ''.
std::string QuoteOrNull(const std::string& text) { return text.empty() ? "null" : Quote(text); }

// The publish statement's input. Payloads were validated and go in verbatim, unparsed.
std::string PublishInput(const std::vector<PublishRequest>& requests) {
  std::string out = "[";
  for (size_t i = 0; i < requests.size(); ++i) {
    const PublishRequest& r = requests[i];
    if (i > 0) out += ',';
    out += "{\"ord\":" + std::to_string(i);
    out += ",\"service\":" + Quote(r.service);
    out += ",\"role\":" + Quote(r.role);
    out += ",\"shard\":" + std::to_string(r.shard);
    out += ",\"tenant\":" + Quote(r.tenant);
    out += ",\"payload\":" + r.payload_json;
    out += ",\"priority\":" + std::to_string(r.priority);
    out += ",\"max_attempts\":" + std::to_string(r.max_attempts);
    out += ",\"idempotency_key\":" + QuoteOrNull(r.idempotency_key);
    out += ",\"correlation_id\":" + QuoteOrNull(r.correlation_id);
    out += ",\"delay_ms\":" + std::to_string(r.delay_ms);
    out += ",\"parent_id\":" + (r.parent_id > 0 ? std::to_string(r.parent_id) : std::string("null"));
    out += '}';
  }
  out += ']';
  return out;
}

std::vector<Lease> CompletionLeases(const std::vector<Completion>& completions) {
  std::vector<Lease> leases;
  leases.reserve(completions.size());
  for (const Completion& c : completions) leases.push_back(c.lease);
  return leases;
}

std::string EventsInput(const std::vector<AuditEvent>& events) {
  json input = json::array();
  for (const AuditEvent& e : events) {
    input.push_back({{"message_id", e.message_id},
                     {"event", e.event},
                     {"detail", e.detail_json.empty() ? json() : json::parse(e.detail_json)}});
  }
  return input.dump();
}

std::string CompleteInput(const std::vector<Completion>& completions) {
  json input = json::array();
  for (const Completion& c : completions) {
    json row = {{"id", c.lease.message_id},
                {"owner", c.lease.owner},
                {"fence", c.lease.fence},
                {"snippet", c.snippet.empty() ? json() : json(c.snippet)},
                {"url", c.url.empty() ? json() : json(c.url)}};
    row["result"] = c.result_json.empty() ? json() : json::parse(c.result_json);
    input.push_back(std::move(row));
  }
  return input.dump();
}

std::string LeaseInput(const std::vector<Lease>& leases) {
  json input = json::array();
  for (const Lease& l : leases) {
    input.push_back({{"id", l.message_id}, {"owner", l.owner}, {"fence", l.fence}});
  }
  return input.dump();
}

// (message id, fence) pairs a lease-checking statement returned, sorted. A batch may hold two
// claims of one message (a stale one and its successor): only the fence tells them apart.
using ClaimId = std::pair<int64_t, int64_t>;

std::vector<ClaimId> Claims(const pqxx::result& rows) {
  std::vector<ClaimId> out;
  out.reserve(rows.size());
  for (const auto& row : rows) out.emplace_back(row[0].as<int64_t>(), row[1].as<int64_t>());
  std::sort(out.begin(), out.end());
  return out;
}

bool Holds(const std::vector<ClaimId>& claims, const Lease& lease) {
  return std::binary_search(claims.begin(), claims.end(), ClaimId{lease.message_id, lease.fence});
}

bool IsEmptyOrBlank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

// Every bus operation is one statement, atomic on its own: without a caller's transaction it
// runs in autocommit, one round trip instead of BEGIN / statement / COMMIT.
template <typename Fn>
auto Autocommit(pqxx::connection& conn, Fn&& fn) {
  pqxx::nontransaction txn(conn);
  return fn(txn);
}

// Whether valid JSON text escapes a NUL character (\u0000, in a string or a key): jsonb cannot
// store one, and the insert would fail with everything written beside it.
bool EscapesNul(std::string_view json_text) {
  for (size_t i = json_text.find('\\'); i != std::string_view::npos; i = json_text.find('\\', i + 2)) {
    if (json_text.substr(i + 1, 5) == "u0000") return true;
  }
  return false;
}

}  // namespace

const char* FailOutcomeName(FailOutcome outcome) {
  switch (outcome) {
    case FailOutcome::requeued: return "requeued";
    case FailOutcome::dead_lettered: return "dead_lettered";
    case FailOutcome::failed: return "failed";
    case FailOutcome::lease_lost: return "lease_lost";
  }
  return "unknown";
}

InvalidMessage::InvalidMessage(Rejection rejection)
    : std::invalid_argument(rejection.reason + ": " + rejection.detail),
      rejection_(std::move(rejection)) {}

std::optional<Rejection> Validate(const PublishRequest& request, const BusLimits& limits) {
  if (IsEmptyOrBlank(request.service)) return Rejection{"empty_service", "service is empty"};
  if (IsEmptyOrBlank(request.role)) return Rejection{"empty_role", "role is empty"};
  if (!ValidRouteName(request.service)) {
    return Rejection{"invalid_route_name", DescribeRouteNameRule("service", request.service)};
  }
  if (!ValidRouteName(request.role)) {
    return Rejection{"invalid_route_name", DescribeRouteNameRule("role", request.role)};
  }
  if (IsEmptyOrBlank(request.tenant)) return Rejection{"empty_tenant", "tenant is empty"};
  if (request.shard < 0) return Rejection{"negative_shard", "shard must be >= 0"};
  if (request.max_attempts < 1) {
    return Rejection{"bad_max_attempts", "max_attempts must be >= 1"};
  }
  if (request.payload_json.size() > limits.max_payload_bytes) {
    return Rejection{"payload_too_large", "payload is " + std::to_string(request.payload_json.size()) +
                                              " bytes; the limit is " +
                                              std::to_string(limits.max_payload_bytes)};
  }
  if (!json::accept(request.payload_json)) {
    return Rejection{"invalid_json", "payload is not valid JSON"};
  }
  const auto first = request.payload_json.find_first_not_of(" \t\r\n");
  if (request.payload_json[first] != '{') {
    return Rejection{"payload_not_object", "payload must be a JSON object"};
  }
  if (EscapesNul(request.payload_json)) {
    return Rejection{"nul_character", "payload holds a \\u0000 character, which PostgreSQL's jsonb cannot store"};
  }
  return std::nullopt;
}

Bus::Bus(pqxx::connection& conn, BusLimits limits) : conn_(conn), limits_(limits) {
  // Statements are registered here and prepared by the server on first use.
  conn_.prepare(sql::kPublishOneName, sql::kPublishOne);
  conn_.prepare(sql::kPublishName, sql::kPublish);
  conn_.prepare(sql::kFindByKeyName, sql::kFindByKey);
  conn_.prepare(sql::kClaimName, sql::kClaim);
  conn_.prepare(sql::kNextDueName, sql::kNextDue);
  conn_.prepare(sql::kCompleteName, sql::kComplete);
  conn_.prepare(sql::kFailName, sql::kFail);
  conn_.prepare(sql::kHeartbeatName, sql::kHeartbeat);
  conn_.prepare(sql::kReleaseName, sql::kRelease);
  conn_.prepare(sql::kLeasesOfName, sql::kLeasesOf);
  conn_.prepare(sql::kCancelName, sql::kCancel);
  conn_.prepare(sql::kCancelQueuedName, sql::kCancelQueued);
  conn_.prepare(sql::kReclaimName, sql::kReclaim);
  conn_.prepare(sql::kRetryName, sql::kRetry);
  conn_.prepare(sql::kRegisterWorkerName, sql::kRegisterWorker);
  conn_.prepare(sql::kMayWorkName, sql::kMayWork);
  conn_.prepare(sql::kTouchWorkerName, sql::kTouchWorker);
  conn_.prepare(sql::kUnregisterWorkerName, sql::kUnregisterWorker);
  conn_.prepare(sql::kAnnounceIdleName, sql::kAnnounceIdle);
  conn_.prepare(sql::kLeaveIdleName, sql::kLeaveIdle);
  conn_.prepare(sql::kLockLeasesName, sql::kLockLeases);
  conn_.prepare(sql::kLockAllLeasesName, sql::kLockAllLeases);
  conn_.prepare(sql::kCompleteAllName, sql::kCompleteAll);
  conn_.prepare(sql::kAddEventsName, sql::kAddEvents);
}

Published Bus::Publish(const PublishRequest& request) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) { return Publish(txn, request); });
}

Published Bus::Publish(pqxx::transaction_base& txn, const PublishRequest& request) {
  // A key needs ON CONFLICT and the lookup of the first message: the batch statement has both.
  if (!request.idempotency_key.empty()) {
    return PublishBatch(txn, std::vector<PublishRequest>{request}).front();
  }
  if (auto rejection = Validate(request, limits_)) throw InvalidMessage(std::move(*rejection));
  // libpqxx 6 sends a null const char* as SQL NULL.
  const std::string parent = std::to_string(request.parent_id);
  const pqxx::row row = txn.exec_prepared1(
      sql::kPublishOneName, request.service, request.role, request.shard, request.tenant,
      request.payload_json, request.priority, request.max_attempts,
      request.correlation_id.empty() ? nullptr : request.correlation_id.c_str(), request.delay_ms,
      request.parent_id > 0 ? parent.c_str() : nullptr);
  return Published{row[0].as<int64_t>(), true};
}

std::vector<Published> Bus::PublishBatch(const std::vector<PublishRequest>& requests) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) { return PublishBatch(txn, requests); });
}

void Bus::ValidateBatch(const std::vector<PublishRequest>& requests) const {
  if (requests.size() > limits_.max_batch) {
    throw InvalidMessage({"batch_too_large", std::to_string(requests.size()) +
                                                 " messages; the limit is " +
                                                 std::to_string(limits_.max_batch)});
  }
  for (const PublishRequest& r : requests) {
    if (auto rejection = Validate(r, limits_)) throw InvalidMessage(std::move(*rejection));
  }
}

std::vector<Published> Bus::ReadPublished(const pqxx::result& rows, size_t count) {
  std::vector<Published> out(count);
  for (const auto& row : rows) {
    auto& published = out.at(row[0].as<size_t>());
    published.created = row[2].as<bool>();
    if (published.created) published.id = row[1].as<int64_t>();
  }
  return out;
}

std::vector<Published> Bus::PublishBatch(pqxx::transaction_base& txn,
                                         const std::vector<PublishRequest>& requests) {
  ValidateBatch(requests);
  std::vector<Published> out(requests.size());
  if (requests.empty()) return out;

  out = ReadPublished(txn.exec_prepared(sql::kPublishName, PublishInput(requests)), requests.size());
  const bool all_created = std::all_of(out.begin(), out.end(), [](const Published& p) { return p.created; });
  if (all_created) return out;

  // Some keys were taken: report the messages that hold them.
  json lookup = json::array();
  for (size_t i = 0; i < requests.size(); ++i) {
    if (out[i].created) continue;
    lookup.push_back({{"ord", i},
                      {"service", requests[i].service},
                      {"role", requests[i].role},
                      {"tenant", requests[i].tenant},
                      {"idempotency_key", requests[i].idempotency_key}});
  }
  for (const auto& row : txn.exec_prepared(sql::kFindByKeyName, lookup.dump())) {
    out.at(row[0].as<size_t>()).id = row[1].as<int64_t>();
  }
  return out;
}

namespace {

std::vector<ClaimedMessage> ReadClaimed(const pqxx::result& rows, const std::string& owner) {
  std::vector<ClaimedMessage> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    ClaimedMessage m;
    m.lease = {row[0].as<int64_t>(), owner, row[7].as<int>(), row[12].as<int64_t>()};
    m.route = {row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<int>()};
    m.tenant = row[4].as<std::string>();
    m.payload_json = row[5].as<std::string>();
    m.priority = row[6].as<int>();
    m.max_attempts = row[8].as<int>();
    m.correlation_id = row[9].as<std::string>();
    m.created_at_epoch = row[10].as<double>();
    m.claimed_at_epoch = row[11].as<double>();
    if (!row[13].is_null()) m.ttl_deadline_epoch = row[13].as<double>();
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

std::vector<ClaimedMessage> Bus::Claim(const ClaimRequest& request) {
  pqxx::nontransaction txn(conn_);
  return ReadClaimed(txn.exec_prepared(sql::kClaimName, request.service, request.role,
                                       db::IntArrayLiteral(request.shards), request.limit, request.owner,
                                       request.lease_ms),
                     request.owner);
}

ClaimResult Bus::ClaimOrNextDue(const ClaimRequest& request) {
  // One message (db::PipelinedTransaction): a second round trip would cost more than the probe.
  db::PipelinedTransaction t(conn_);
  const std::string shards = t.Literal(db::IntArrayLiteral(request.shards));
  const std::string service = t.Literal(request.service);
  const std::string role = t.Literal(request.role);
  const size_t claim = t.Queue(sql::kClaimName, {service, role, shards, t.Literal(int64_t{request.limit}),
                                                 t.Literal(request.owner), t.Literal(int64_t{request.lease_ms})});
  const size_t next_due = t.Queue(sql::kNextDueName, {service, role, shards});
  const std::vector<pqxx::result> results = t.Commit();
  ClaimResult result;
  result.messages = ReadClaimed(results.at(claim), request.owner);
  const pqxx::result& due = results.at(next_due);
  if (!due.empty() && !due[0][0].is_null()) result.next_due = std::chrono::milliseconds(due[0][0].as<int64_t>());
  return result;
}

bool Bus::Complete(const Completion& completion) {
  return CompleteBatch({completion}).front();
}

bool Bus::Complete(pqxx::transaction_base& txn, const Completion& completion) {
  return CompleteBatch(txn, {completion}).front();
}

std::vector<bool> Bus::CompleteBatch(const std::vector<Completion>& completions) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) { return CompleteBatch(txn, completions); });
}

std::vector<bool> Bus::CompleteBatch(pqxx::transaction_base& txn,
                                     const std::vector<Completion>& completions) {
  if (completions.empty()) return {};
  return ReadHeld(txn.exec_prepared(sql::kCompleteName, CompleteInput(completions)), CompletionLeases(completions));
}

FailOutcome Bus::Fail(const Failure& failure) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) { return Fail(txn, failure); });
}

FailOutcome Bus::Fail(pqxx::transaction_base& txn, const Failure& failure) {
  return ReadFail(txn.exec_prepared(
      sql::kFailName, failure.lease.message_id, failure.lease.owner, failure.lease.fence,
      failure.error, failure.kind != FailureKind::permanent, failure.retry_delay_ms,
      failure.kind == FailureKind::infrastructure, kAttemptsGivenBack));
}

FailOutcome Bus::ReadFail(const pqxx::result& rows) {
  if (rows.empty()) return FailOutcome::lease_lost;
  const std::string status = rows[0][0].as<std::string>();
  if (status == "queued") return FailOutcome::requeued;
  if (status == "dead") return FailOutcome::dead_lettered;
  return FailOutcome::failed;
}

std::vector<Lease> Bus::LeasesOf(const std::string& owner) {
  pqxx::nontransaction txn(conn_);
  std::vector<Lease> leases;
  for (const auto& row : txn.exec_prepared(sql::kLeasesOfName, owner)) {
    leases.push_back({row[0].as<int64_t>(), owner, row[1].as<int>(), row[2].as<int64_t>()});
  }
  return leases;
}

std::vector<bool> Bus::Heartbeat(const std::vector<Lease>& leases, int64_t lease_ms) {
  std::vector<bool> held(leases.size(), false);
  if (leases.empty()) return held;
  pqxx::nontransaction txn(conn_);
  const std::vector<ClaimId> extended =
      Claims(txn.exec_prepared(sql::kHeartbeatName, LeaseInput(leases), lease_ms));
  for (size_t i = 0; i < leases.size(); ++i) held[i] = Holds(extended, leases[i]);
  return held;
}

bool Bus::Release(const Lease& lease) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) { return Release(txn, lease); });
}

bool Bus::Release(pqxx::transaction_base& txn, const Lease& lease) {
  return !txn.exec_prepared(sql::kReleaseName, lease.message_id, lease.owner, lease.fence).empty();
}

std::vector<bool> Bus::LockLeases(pqxx::transaction_base& txn, const std::vector<Lease>& leases) {
  if (leases.empty()) return {};
  return ReadHeld(txn.exec_prepared(sql::kLockLeasesName, LeaseInput(leases)), leases);
}

std::vector<bool> Bus::ReadHeld(const pqxx::result& rows, const std::vector<Lease>& leases) {
  const std::vector<ClaimId> found = Claims(rows);
  std::vector<bool> held(leases.size(), false);
  for (size_t i = 0; i < leases.size(); ++i) held[i] = Holds(found, leases[i]);
  return held;
}

void Bus::AddEvents(pqxx::transaction_base& txn, const std::vector<AuditEvent>& events) {
  if (events.empty()) return;
  txn.exec_prepared(sql::kAddEventsName, EventsInput(events));
}

size_t Bus::QueueLockLeases(db::PipelinedTransaction& t, const std::vector<Lease>& leases) {
  return t.Queue(sql::kLockLeasesName, {t.Literal(LeaseInput(leases))});
}

size_t Bus::QueueLockAllLeases(db::PipelinedTransaction& t, const std::vector<Lease>& leases) {
  return t.Queue(sql::kLockAllLeasesName, {t.Literal(LeaseInput(leases))});
}

bool IsLeaseLost(const std::exception& error) { return db::HasSqlState(error, "CL001"); }

size_t Bus::QueueAddEvents(db::PipelinedTransaction& t, const std::vector<AuditEvent>& events) {
  return t.Queue(sql::kAddEventsName, {t.Literal(EventsInput(events))});
}

size_t Bus::QueuePublish(db::PipelinedTransaction& t, const std::vector<PublishRequest>& requests) {
  ValidateBatch(requests);
  return t.Queue(sql::kPublishName, {t.Literal(PublishInput(requests))});
}

size_t Bus::QueueComplete(db::PipelinedTransaction& t, const std::vector<Completion>& completions) {
  return t.Queue(sql::kCompleteName, {t.Literal(CompleteInput(completions))});
}

size_t Bus::QueueCompleteAll(db::PipelinedTransaction& t, const std::vector<Completion>& completions) {
  return t.Queue(sql::kCompleteAllName, {t.Literal(CompleteInput(completions))});
}

size_t Bus::QueueFail(db::PipelinedTransaction& t, const Failure& failure) {
  return t.Queue(sql::kFailName,
                 {t.Literal(failure.lease.message_id), t.Literal(failure.lease.owner), t.Literal(failure.lease.fence),
                  t.Literal(failure.error), t.Literal(failure.kind != FailureKind::permanent),
                  t.Literal(failure.retry_delay_ms), t.Literal(failure.kind == FailureKind::infrastructure),
                  t.Literal(static_cast<int64_t>(kAttemptsGivenBack))});
}

size_t Bus::QueueRelease(db::PipelinedTransaction& t, const Lease& lease) {
  return t.Queue(sql::kReleaseName, {t.Literal(lease.message_id), t.Literal(lease.owner), t.Literal(lease.fence)});
}

bool Bus::Cancel(int64_t id, const std::string& reason) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) { return Cancel(txn, id, reason); });
}

bool Bus::Cancel(pqxx::transaction_base& txn, int64_t id, const std::string& reason) {
  return !txn.exec_prepared(sql::kCancelName, id, reason).empty();
}

int64_t Bus::CancelQueued(pqxx::transaction_base& txn, const std::string& service, const std::string& role,
                          const std::string& tenant, const std::vector<std::string>& idempotency_keys,
                          const std::string& reason) {
  return static_cast<int64_t>(
      txn.exec_prepared(sql::kCancelQueuedName, service, role, tenant, nlohmann::json(idempotency_keys).dump(), reason)
          .size());
}

ReclaimCounts Bus::Reclaim(int limit) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) {
    const pqxx::result rows = txn.exec_prepared(sql::kReclaimName, limit);
    return ReclaimCounts{rows[0][0].as<int64_t>(), rows[0][1].as<int64_t>()};
  });
}

bool Bus::Retry(int64_t id) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) {
    return !txn.exec_prepared(sql::kRetryName, id, "", "", "{dead,failed,cancelled}").empty();
  });
}

int64_t Bus::RequeueDead(const std::string& service, const std::string& role) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) {
    return static_cast<int64_t>(
        txn.exec_prepared(sql::kRetryName, nullptr, service, role, "{dead}").size());
  });
}

void Bus::RegisterWorker(const WorkerInfo& info) {
  Autocommit(conn_, [&](pqxx::transaction_base& txn) {
    // A worker under the wrong login (sql/023) stops with the reason instead of polling for nothing.
    const auto may = txn.exec_prepared1(sql::kMayWorkName, info.service, info.role);
    if (!may[0].as<bool>()) {
      throw std::runtime_error("database role " + may[1].as<std::string>() + " may not work " + info.service + "/" +
                         info.role + " (sql/023: log in as a role whose routes in cogo_db_roles include it)");
    }
    return txn.exec_prepared(sql::kRegisterWorkerName, info.worker_id, info.service, info.role,
                             db::IntArrayLiteral(info.shards), info.host, info.pid);
  });
}

void Bus::TouchWorker(const std::string& worker_id) {
  Autocommit(conn_, [&](pqxx::transaction_base& txn) {
    return txn.exec_prepared(sql::kTouchWorkerName, worker_id);
  });
}

void Bus::UnregisterWorker(const std::string& worker_id) {
  Autocommit(conn_, [&](pqxx::transaction_base& txn) {
    return txn.exec_prepared(sql::kUnregisterWorkerName, worker_id);
  });
}

Bus::IdleResult Bus::AnnounceIdle(const std::string& worker_id, const std::string& service,
                                  const std::string& role, const std::vector<int>& shards) {
  const std::string result = Autocommit(conn_, [&](pqxx::transaction_base& txn) {
    return txn.exec_prepared1(sql::kAnnounceIdleName, worker_id, service, role,
                              db::IntArrayLiteral(shards))[0].as<std::string>();
  });
  if (result == "sentinel") return IdleResult::sentinel;
  if (result == "covered") return IdleResult::covered;
  if (result == "standby") return IdleResult::standby;
  return IdleResult::busy;
}

void Bus::LeaveIdle(const std::string& service, const std::string& role,
                    const std::vector<int>& shards) {
  Autocommit(conn_, [&](pqxx::transaction_base& txn) {
    return txn.exec_prepared(sql::kLeaveIdleName, service, role, db::IntArrayLiteral(shards));
  });
}

std::string Bus::WakeChannel(const std::string& service, const std::string& role) {
  return Autocommit(conn_, [&](pqxx::transaction_base& txn) {
    return txn.exec_params1(sql::kWakeChannel, service, role)[0].as<std::string>();
  });
}

}  // namespace cogo::bus
