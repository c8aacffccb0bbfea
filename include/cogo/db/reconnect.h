// The one rule for every database connection cogo holds (pools, per-thread connections, the
// workers' claim and flush loops, periodic tasks, the LISTEN connection), in the manner of
// pqxx::perform: failures are classified in one place (Classify), and
//   - a lost connection (broken before or while sending, the server shutting down or starting:
//     57P01, 57P02, 57P03, class 08) did not commit: the work runs once more on a fresh
//     connection, opened with a short bounded backoff while the server is down;
//   - a commit in doubt (the connection broke during COMMIT, or a statement's completion is
//     unknown) is never retried blindly: only callers whose repeat is harmless opt in;
//   - everything else is the caller's failure.
// A connection found broken is dropped, never used again (libpqxx 6 would otherwise reconnect
// it silently, without the session settings the opener made).
//
// pqxx reports a connection that breaks during an autocommit statement as a lost connection,
// whether or not the server executed it. Every autocommit write of cogo is safe to repeat (lease
// checks, idempotency keys, releasing a worker's orphaned leases); a write that is not must run
// in a transaction, whose commit reports the doubt.
//
// Thread-safe: Connector is immutable; each connection is used by one thread at a time.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include <pqxx/connection>
#include <pqxx/except>
#include <spdlog/logger.h>

namespace cogo::db {

enum class FailureKind {
  connection_lost,  // nothing in flight committed; a fresh connection may succeed
  rolled_back,      // serialization failure or deadlock: the transaction rolled back
  in_doubt,         // it may have committed: never retry blindly
  other,            // a bug, a constraint, bad input: a retry gives the same answer
};

[[nodiscard]] FailureKind Classify(const std::exception& error);
// Whether `error` is a statement's failure with SQLSTATE `state` (e.g. one of cogo's own
// assertions, sql/026 CL001 and sql/027 CL002).
[[nodiscard]] bool HasSqlState(const std::exception& error, std::string_view state);
[[nodiscard]] std::string_view FailureKindName(FailureKind kind);

// The server could not be reached within the caller's patience. A lost connection for Classify,
// so every handler of those treats it alike; HTTP answers it with 503 and Retry-After.
class Unavailable : public pqxx::broken_connection {
 public:
  explicit Unavailable(const std::string& what) : pqxx::broken_connection(what) {}
};

struct ReconnectPolicy {
  std::chrono::milliseconds first_pause{50};  // the first wait for a server that refuses...
  std::chrono::milliseconds max_pause{1000};  // ...doubling up to this
  // How long Open waits for the server before it throws Unavailable (a background loop then
  // logs and opens again, so a server that stays away is seen in the log).
  std::chrono::milliseconds patience{5000};
};

// The pause after `previous` (zero: none yet) under `policy`: first_pause, then doubling to
// max_pause.
[[nodiscard]] std::chrono::milliseconds NextPause(std::chrono::milliseconds previous,
                                                  const ReconnectPolicy& policy);

// Opens connections to one database, tagged with one application_name (pg_stat_activity shows
// who is who; tests find a role's backend by it).
class Connector {
 public:
  // `session_setup`: SQL run on every connection it opens (db::Connect), so that settings
  // survive a reconnect without a round trip per transaction.
  Connector(std::string url, std::string application_name, ReconnectPolicy policy = {},
            std::string session_setup = {});

  // A fresh connection. While the server refuses (a lost connection), waits per the policy and
  // tries again; throws Unavailable when patience or `stop` ends the wait. Other failures
  // (a wrong password, a missing database) propagate at once.
  [[nodiscard]] std::unique_ptr<pqxx::connection> Open(std::stop_token stop = {}) const;

  [[nodiscard]] const std::string& application_name() const { return application_name_; }
  [[nodiscard]] const ReconnectPolicy& policy() const { return policy_; }

 private:
  std::string url_;
  std::string application_name_;
  ReconnectPolicy policy_;
  std::string session_setup_;
};

// Runs `body(conn)` on the connection in `slot` (opened by `connector` when empty). When it
// fails with a lost connection, the connection is dropped and `body` runs once more on a fresh
// one; a second failure propagates. Any failure that broke the connection leaves `slot` empty.
template <typename Body>
auto WithRetry(const Connector& connector, std::unique_ptr<pqxx::connection>& slot, Body&& body,
               std::stop_token stop = {}) -> decltype(body(*slot)) {
  for (int attempt = 0;; ++attempt) {
    if (!slot) slot = connector.Open(stop);
    try {
      return body(*slot);
    } catch (const std::exception& e) {
      const bool lost = Classify(e) == FailureKind::connection_lost;
      if (lost || !slot->is_open()) slot.reset();
      if (lost && attempt == 0) continue;
      throw;
    }
  }
}

// Whether a loop may run again after a commit in doubt: only when repeating its work is harmless.
enum class InDoubt { fatal, retry };

// Whether a connected loop survives a failure of `kind` (reconnects and runs again).
[[nodiscard]] bool LoopSurvives(FailureKind kind, InDoubt in_doubt);

// A loop that owns a connection for its whole life (a worker's claim or flush loop, a periodic
// task, the LISTEN connection): runs `body(conn, reconnected)` until it returns. A lost
// connection or a rollback (and a commit in doubt, if the loop says so) only costs a reconnect:
// a fresh connection (waiting while the server is down) and `body` runs again, pausing longer
// after each failure that came soon after the last. Returns an empty string when the body
// returned or `stop` was requested, or the failure that ended the loop ("<loop>: <what>").
[[nodiscard]] std::string RunConnected(
    const Connector& connector, std::stop_token stop, spdlog::logger& logger,
    std::string_view loop, InDoubt in_doubt,
    const std::function<void(pqxx::connection& conn, bool reconnected)>& body);

}  // namespace cogo::db
