#include "cogo/orchestrator/replay.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace cogo::orchestrator {
namespace {

// percentile_cont: the value at rank p * (n - 1), interpolated between its neighbours.
double Percentile(std::vector<double> sorted, double p) {
  std::sort(sorted.begin(), sorted.end());
  const double rank = p * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<size_t>(std::floor(rank));
  const auto above = static_cast<size_t>(std::ceil(rank));
  return sorted[below] + (sorted[above] - sorted[below]) * (rank - static_cast<double>(below));
}

}  // namespace

ReplayScore ScoreReplay(const std::vector<EvalItem>& items, const std::vector<EvalOutcome>& outcomes,
                        const std::vector<std::optional<ReplayedRequest>>& replayed) {
  if (items.size() != replayed.size()) throw std::invalid_argument("one replay slot per evaluation item");
  const EvalScore routing = ScoreRouting(items, outcomes);
  std::vector<bool> routed_right(items.size(), true);
  for (const size_t i : routing.wrong) routed_right[i] = false;

  ReplayScore score;
  std::vector<double> latencies;
  std::vector<double> waits;
  for (size_t i = 0; i < items.size(); ++i) {
    bool right = routed_right[i];
    if (const auto& r = replayed[i]) {
      ++score.requests;
      switch (r->status) {
        case ReplayedRequest::Status::pending: ++score.pending; break;
        case ReplayedRequest::Status::done: ++score.done; break;
        case ReplayedRequest::Status::failed: ++score.failed; break;
      }
      if (r->status != ReplayedRequest::Status::pending) {
        latencies.push_back(r->latency_ms);
        waits.push_back(r->queue_wait_ms);
        score.cost_usd += r->cost_usd;
      }
      right = right && r->status == ReplayedRequest::Status::done &&
              (items[i].expected_answer.empty() || r->result.find(items[i].expected_answer) != std::string::npos);
    }
    if (right) ++score.correct;
  }
  const int finished = score.done + score.failed;
  if (finished > 0) {
    score.failure_rate = static_cast<double>(score.failed) / finished;
    score.latency_p50_ms = Percentile(latencies, 0.5);
    score.latency_p90_ms = Percentile(latencies, 0.9);
    score.queue_wait_p50_ms = Percentile(waits, 0.5);
    score.cost_per_request_usd = score.cost_usd / finished;
  }
  if (!items.empty()) score.quality = static_cast<double>(score.correct) / static_cast<double>(items.size());
  return score;
}

Comparison CompareVersions(const VersionFigures& candidate, const VersionFigures& baseline, double latency_slo_ms) {
  const double failures = candidate.failure_rate.value_or(0);
  const double quality = candidate.quality.value_or(0);
  const double cost = candidate.cost_per_request_usd.value_or(0);
  const double base_cost = baseline.cost_per_request_usd.value_or(cost);
  Comparison c;
  c.failure_rate_delta = failures - baseline.failure_rate.value_or(failures);
  c.quality_delta = quality - baseline.quality.value_or(quality);
  c.latency_within_slo = candidate.latency_p90_ms.value_or(0) <= latency_slo_ms;
  const double wait = candidate.queue_wait_p50_ms.value_or(0);
  const double base_wait = baseline.queue_wait_p50_ms.value_or(wait);
  c.queue_wait_within_baseline = wait <= std::max(base_wait * 1.5, base_wait + 100);
  // 20 % over the baseline's cost per request, or a tenth of a cent, is still in.
  c.cost_within_baseline = cost <= std::max(base_cost * 1.2, base_cost + 0.001);
  return c;
}

}  // namespace cogo::orchestrator
