#include "cogo/metrics/alert_sender.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include "cogo/auth/jwt.h"
#include "cogo/base/unix_time.h"
#include "cogo/metrics/alerts.h"
#include "metrics/statements.h"

namespace cogo::metrics {
namespace {

using nlohmann::json;

struct Answer {
  int status = 0;     // 0: no answer
  int64_t run_id = 0;
  std::string error;  // machine-readable: the brain's error code, or the transport's failure
};

Answer StartRun(httplib::Client& brain, const std::string& token, const std::string& key, const json& body) {
  const httplib::Headers headers{{"Authorization", "Bearer " + token}, {"Idempotency-Key", key}};
  const auto result = brain.Post("/api/workflows/execute", headers, body.dump(), "application/json");
  if (!result) return {0, 0, "brain_unreachable: " + httplib::to_string(result.error())};
  Answer out{result->status, 0, ""};
  const auto reply = json::parse(result->body, nullptr, false);
  if (reply.is_object() && reply.contains("runId") && reply["runId"].is_number_integer()) {
    out.run_id = reply["runId"].get<int64_t>();
  } else if (reply.is_object() && reply.contains("error") && reply["error"].is_string()) {
    out.error = "brain_" + std::to_string(result->status) + ": " + reply["error"].get<std::string>();
  } else {
    out.error = "brain_" + std::to_string(result->status);
  }
  return out;
}

}  // namespace

void SendAlertTransitions(pqxx::connection& conn, const AlertSenderOptions& options, spdlog::logger& logger) {
  pqxx::work txn(conn);
  if (!txn.exec1(sql::kEvaluatorLock)[0].as<bool>()) return;
  const auto unsent = txn.exec(sql::kUnsentTransitions);
  if (unsent.empty()) return;
  httplib::Client brain(options.brain_url);
  brain.set_connection_timeout(options.timeout);
  brain.set_read_timeout(options.timeout);
  brain.set_write_timeout(options.timeout);
  const auto token = auth::MintToken(options.jwt_secret, {auth::Role::kServiceRole, "", "cogo-metrics-server", std::nullopt},
                                     base::UnixSeconds(), std::chrono::minutes(5));
  for (const auto& row : unsent) {
    const auto id = row[0].as<int64_t>();
    const auto workflow = row[8].as<std::string>();
    const json alert = {{"transition_id", id}, {"rule", row[1].as<std::string>()}, {"key", row[2].as<std::string>()},
                        {"state", row[3].as<std::string>()}, {"value", row[4].as<double>()},
                        {"threshold", row[5].as<double>()}, {"severity", row[6].as<std::string>()},
                        {"at", row[7].as<std::string>()}};
    const json body = {{"workflowId", workflow}, {"tenant", options.tenant}, {"parameters", {{"alert", alert}}}};
    const auto answer = StartRun(brain, token, "alert-transition:" + std::to_string(id), body);
    const int attempts = row[9].as<int>() + 1;
    switch (NextSendStep(answer.status, attempts, options.max_attempts)) {
      case SendStep::started:
        txn.exec_params0(sql::kTransitionSent, id, answer.run_id);
        logger.info("alert transition {} ({} {} {}): workflow {} run {}", id, alert["rule"].get<std::string>(),
                    alert["key"].get<std::string>(), alert["state"].get<std::string>(), workflow, answer.run_id);
        break;
      case SendStep::retry_later:
        txn.exec_params0(sql::kTransitionNotSent, id, answer.error, false);
        logger.warn("alert transition {}: workflow {} not started (attempt {} of {}): {}", id, workflow, attempts,
                    options.max_attempts, answer.error);
        break;
      case SendStep::give_up:
        txn.exec_params0(sql::kTransitionNotSent, id, answer.error, true);
        logger.error("alert transition {}: workflow {} not started, given up after {} attempts: {}", id, workflow,
                     attempts, answer.error);
        break;
    }
  }
  txn.commit();
}

}  // namespace cogo::metrics
