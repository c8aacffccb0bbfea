// Sends recorded alert transitions (sql/020: alert_transitions is the outbox) as runs of their
// rule's notify workflow, started through the brain's POST /api/workflows/execute with a
// short-lived service_role token and the Idempotency-Key `alert-transition:<id>`: the run's
// Notify node posts the webhook, signed by the brain. A transition is sent once (a repeated
// request gets the first run back), retried on no answer or a 5xx, and given up with its reason
// on a refusal. Stateless: call from one thread (the metrics server's alert task).
#pragma once

#include <chrono>
#include <string>

#include <pqxx/connection>
#include <spdlog/logger.h>

namespace cogo::metrics {

struct AlertSenderOptions {
  std::string brain_url = "http://127.0.0.1:8781";  // http://host:port of cogo-orchestrator-brain
  std::string tenant = "ops";     // the tenant the runs belong to
  std::string jwt_secret;         // signs the service_role token (COGO_JWT_SECRET); never logged
  int max_attempts = 20;          // per transition, one per evaluator round
  std::chrono::milliseconds timeout{5000};
};

// One round: the unsent transitions, oldest first (at most 50), each recorded as started (its
// run id), failed for now, or given up (notify_error). Runs under the evaluator's advisory lock,
// so servers sharing a database do not send the same transition at once.
void SendAlertTransitions(pqxx::connection& conn, const AlertSenderOptions& options, spdlog::logger& logger);

}  // namespace cogo::metrics
