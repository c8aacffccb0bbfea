// How the upgrade workflow judges two versions of an agent: the evaluate step's replay of a
// labelled set (each request executed on the candidate and on the current version through the
// real bus path) scored per version, and the comparison both the offline gate (replay figures)
// and the live gate (decision figures) assert on. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cogo/orchestrator/routing_eval.h"

namespace cogo::orchestrator {

// One replayed request's execution on one version, as the bus recorded it: the execute message
// and its hand-off to the agent's route.
struct ReplayedRequest {
  enum class Status { pending, done, failed };
  Status status = Status::pending;
  double latency_ms = 0;  // first message created -> last one finished
  double queue_wait_ms = 0;  // the time its messages waited to be claimed, added up
  double cost_usd = 0;    // message_usage of both messages
  std::string result;     // the agent's result document (JSON text), "" when none
};

struct ReplayScore {
  int requests = 0;  // replayed on this version (the set's items the agent serves)
  int done = 0;
  int failed = 0;
  int pending = 0;
  int correct = 0;                     // of the set's items
  std::optional<double> failure_rate;  // failed / finished; nullopt when none finished
  std::optional<double> quality;       // correct / items; nullopt for an empty set
  std::optional<double> latency_p50_ms;
  std::optional<double> latency_p90_ms;
  std::optional<double> queue_wait_p50_ms;
  double cost_usd = 0;
  std::optional<double> cost_per_request_usd;  // over finished requests
};

// items[i] was routed as outcomes[i]; replayed[i] is its execution on this version (nullopt when
// it was not replayed: another agent serves it, or routing refused it). An item is correct when
// its routing is (ScoreRouting) and, when replayed, its execution ended done with a result that
// contains the item's expected answer (when it names one). Latency and cost cover finished
// executions; percentiles interpolate between ranks as PostgreSQL's percentile_cont does.
[[nodiscard]] ReplayScore ScoreReplay(const std::vector<EvalItem>& items, const std::vector<EvalOutcome>& outcomes,
                                      const std::vector<std::optional<ReplayedRequest>>& replayed);

// What the gates compare, of one version (replayed or live); nullopt: nothing measured.
struct VersionFigures {
  std::optional<double> failure_rate;
  std::optional<double> quality;
  std::optional<double> latency_p90_ms;
  std::optional<double> queue_wait_p50_ms;
  std::optional<double> cost_per_request_usd;
};

struct Comparison {
  double failure_rate_delta = 0;  // candidate - baseline
  double quality_delta = 0;       // candidate - baseline
  bool latency_within_slo = true;  // the candidate's p90 <= the SLO
  bool queue_wait_within_baseline = true;  // p50 within 50 % (or 100 ms) of the baseline's
  bool cost_within_baseline = true;  // within 20 % (or a tenth of a cent) of the baseline's
};

// A baseline figure nothing measured compares as equal to the candidate's; a candidate figure
// nothing measured counts as 0 (no failures, no quality, no latency, no wait, no cost).
[[nodiscard]] Comparison CompareVersions(const VersionFigures& candidate, const VersionFigures& baseline,
                                         double latency_slo_ms);

}  // namespace cogo::orchestrator
