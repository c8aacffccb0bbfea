#include "cogo/db/reconnect.h"

#include <algorithm>

#include "cogo/db/connection.h"
#include "cogo/base/sleep.h"

namespace cogo::db {

FailureKind Classify(const std::exception& error) {
  // Order matters: statement_completion_unknown is a transaction_rollback in libpqxx, and
  // Unavailable a broken_connection.
  if (dynamic_cast<const pqxx::in_doubt_error*>(&error) != nullptr) return FailureKind::in_doubt;
  if (dynamic_cast<const pqxx::statement_completion_unknown*>(&error) != nullptr) {
    return FailureKind::in_doubt;
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr) {
    return FailureKind::connection_lost;
  }
  if (dynamic_cast<const pqxx::transaction_rollback*>(&error) != nullptr) {
    return FailureKind::rolled_back;
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error)) {
    const std::string& state = sql->sqlstate();
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection.
    if (state == "57P01" || state == "57P02" || state == "57P03" || state.rfind("08", 0) == 0) {
      return FailureKind::connection_lost;
    }
    if (state == "40003") return FailureKind::in_doubt;  // statement_completion_unknown
    if (state == "40001" || state == "40P01") return FailureKind::rolled_back;
  }
  return FailureKind::other;
}

bool HasSqlState(const std::exception& error, std::string_view state) {
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error);
  return sql != nullptr && sql->sqlstate() == state;
}

std::string_view FailureKindName(FailureKind kind) {
  switch (kind) {
    case FailureKind::connection_lost: return "connection_lost";
    case FailureKind::rolled_back: return "rolled_back";
    case FailureKind::in_doubt: return "in_doubt";
    case FailureKind::other: return "other";
  }
  return "other";
}

std::chrono::milliseconds NextPause(std::chrono::milliseconds previous,
                                    const ReconnectPolicy& policy) {
  if (previous <= std::chrono::milliseconds(0)) return policy.first_pause;
  return std::min(previous * 2, policy.max_pause);
}

Connector::Connector(std::string url, std::string application_name, ReconnectPolicy policy,
                     std::string session_setup)
    : url_(std::move(url)),
      application_name_(std::move(application_name)),
      policy_(policy),
      session_setup_(std::move(session_setup)) {}

std::unique_ptr<pqxx::connection> Connector::Open(std::stop_token stop) const {
  const auto give_up = std::chrono::steady_clock::now() + policy_.patience;
  std::chrono::milliseconds pause{0};
  while (true) {
    try {
      return Connect(url_, application_name_, session_setup_);
    } catch (const std::exception& e) {
      if (Classify(e) != FailureKind::connection_lost) throw;
      pause = NextPause(pause, policy_);
      if (std::chrono::steady_clock::now() + pause > give_up) {
        throw Unavailable(std::string("the database cannot be reached: ") + e.what());
      }
      if (!base::SleepFor(stop, pause)) {
        throw Unavailable("stopped while waiting for the database");
      }
    }
  }
}

bool LoopSurvives(FailureKind kind, InDoubt in_doubt) {
  switch (kind) {
    case FailureKind::connection_lost:
    case FailureKind::rolled_back: return true;
    case FailureKind::in_doubt: return in_doubt == InDoubt::retry;
    case FailureKind::other: return false;
  }
  return false;
}

std::string RunConnected(const Connector& connector, std::stop_token stop, spdlog::logger& logger,
                         std::string_view loop, InDoubt in_doubt,
                         const std::function<void(pqxx::connection&, bool)>& body) {
  // A body that ran this long before it failed was not failing in a loop: back off afresh.
  const auto healthy_run = connector.policy().max_pause * 10;
  std::chrono::milliseconds pause{0};
  bool reconnected = false;
  while (!stop.stop_requested()) {
    const auto started = std::chrono::steady_clock::now();
    try {
      auto conn = connector.Open(stop);
      if (reconnected) logger.info("{} loop reconnected", loop);
      body(*conn, reconnected);
      return {};
    } catch (const std::exception& e) {
      if (stop.stop_requested()) return {};
      const FailureKind kind = Classify(e);
      if (!LoopSurvives(kind, in_doubt)) {
        logger.error("{} loop stopped: {}", loop, e.what());
        return std::string(loop) + ": " + e.what();
      }
      if (std::chrono::steady_clock::now() - started > healthy_run) pause = {};
      pause = NextPause(pause, connector.policy());
      logger.warn("{} loop lost the database ({}: {}); reconnecting in {} ms", loop,
                  FailureKindName(kind), e.what(), pause.count());
      if (!base::SleepFor(stop, pause)) return {};
      reconnected = true;
    }
  }
  return {};
}

}  // namespace cogo::db
