// The upgrade's judgement of two versions: a replay scored per version (orchestrator/replay.h)
// and the comparison the offline and live gates assert on, from tables of cases.
#include "cogo/orchestrator/replay.h"

#include <gtest/gtest.h>

namespace cogo::orchestrator {
namespace {

using Status = ReplayedRequest::Status;

// Waits a tenth of its latency.
ReplayedRequest Ran(Status status, double latency_ms, double cost_usd = 0, std::string result = "{}") {
  return {status, latency_ms, latency_ms / 10, cost_usd, std::move(result)};
}

TEST(Replay, ScoresAVersionsExecutionsOfTheSet) {
  const std::vector<EvalItem> items = {
      {"chat", "{}", "chat", "chat-assistant", "hello"},
      {"chat", "{}", "chat", "chat-assistant", ""},
      {"chat", "{}", "chat", "chat-assistant", "hello"},
      {"summarize", "{}", "summarize", "summarizer", ""},
      {"talk", "{}", "chat", "", ""},
  };
  const std::vector<EvalOutcome> outcomes = {
      {"chat", "chat-assistant", ""}, {"chat", "chat-assistant", ""}, {"chat", "chat-assistant", ""},
      {"summarize", "summarizer", ""},  // another agent's: routing alone judges it
      {"", "", "unknown_intent"},       // refused: wrong, nothing to replay
  };
  struct Case {
    const char* what;
    std::vector<std::optional<ReplayedRequest>> replayed;
    int requests, done, failed, pending, correct;
    std::optional<double> failure_rate, p50, p90, cost_per_request;
  };
  const std::vector<Case> cases = {
      {"all done, answers right",
       {Ran(Status::done, 10, 0.01, R"({"reply":"hello you"})"), Ran(Status::done, 20, 0.01), Ran(Status::done, 30, 0.01, "hello"),
        std::nullopt, std::nullopt},
       3, 3, 0, 0, 4, 0.0, 20.0, 28.0, 0.01},
      {"a failure and a wrong answer",
       {Ran(Status::failed, 100), Ran(Status::done, 20), Ran(Status::done, 30, 0, R"({"reply":"bye"})"), std::nullopt, std::nullopt},
       3, 2, 1, 0, 2, 1.0 / 3, 30.0, 86.0, 0.0},
      {"one still running counts nowhere but pending",
       {Ran(Status::pending, 0), Ran(Status::done, 20), Ran(Status::done, 40, 0, "hello"), std::nullopt, std::nullopt},
       3, 2, 0, 1, 3, 0.0, 30.0, 38.0, 0.0},
      {"nothing replayed", {std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt},
       0, 0, 0, 0, 4, std::nullopt, std::nullopt, std::nullopt, std::nullopt},
  };
  for (const auto& c : cases) {
    const auto s = ScoreReplay(items, outcomes, c.replayed);
    EXPECT_EQ(s.requests, c.requests) << c.what;
    EXPECT_EQ(s.done, c.done) << c.what;
    EXPECT_EQ(s.failed, c.failed) << c.what;
    EXPECT_EQ(s.pending, c.pending) << c.what;
    EXPECT_EQ(s.correct, c.correct) << c.what;
    ASSERT_TRUE(s.quality.has_value()) << c.what;
    EXPECT_DOUBLE_EQ(*s.quality, c.correct / 5.0) << c.what;
    EXPECT_EQ(s.failure_rate.has_value(), c.failure_rate.has_value()) << c.what;
    EXPECT_EQ(s.failure_rate, c.failure_rate) << c.what;
    EXPECT_EQ(s.latency_p50_ms, c.p50) << c.what;
    EXPECT_EQ(s.latency_p90_ms, c.p90) << c.what;
    EXPECT_EQ(s.queue_wait_p50_ms, c.p50 ? std::optional<double>(*c.p50 / 10) : std::nullopt) << c.what;
    EXPECT_EQ(s.cost_per_request_usd.has_value(), c.cost_per_request.has_value()) << c.what;
    if (c.cost_per_request) {
      EXPECT_NEAR(*s.cost_per_request_usd, *c.cost_per_request, 1e-12) << c.what;
    }
  }
  EXPECT_FALSE(ScoreReplay({}, {}, {}).quality.has_value());  // an empty set has no quality
  EXPECT_THROW((void)ScoreReplay(items, outcomes, {}), std::invalid_argument);
}

TEST(Replay, ComparesACandidateWithItsBaseline) {
  struct Case {
    const char* what;
    VersionFigures candidate, baseline;
    double failure_rate_delta, quality_delta;
    bool latency_within_slo, queue_wait_within_baseline, cost_within_baseline;
  };
  const double slo = 1000;
  const std::vector<Case> cases = {
      // {failure rate, quality, latency p90, queue wait p50, cost per request}
      {"as good", {0.0, 0.9, 200.0, 10.0, 0.01}, {0.0, 0.9, 250.0, 12.0, 0.01}, 0, 0, true, true, true},
      {"fails more, worse quality", {0.5, 0.4, 200.0, 10.0, 0.01}, {0.0, 0.9, 200.0, 10.0, 0.01}, 0.5, -0.5, true, true, true},
      {"slower than the SLO", {0.0, 0.9, 1500.0, 10.0, 0.01}, {0.0, 0.9, 200.0, 10.0, 0.01}, 0, 0, false, true, true},
      {"at the SLO", {0.0, 0.9, 1000.0, 10.0, 0.01}, {0.0, 0.9, 200.0, 10.0, 0.01}, 0, 0, true, true, true},
      {"waits 100 ms more than a short wait", {0.0, 0.9, 1.0, 110.0, 0.01}, {0.0, 0.9, 1.0, 10.0, 0.01}, 0, 0, true, true, true},
      {"waits more than that", {0.0, 0.9, 1.0, 111.0, 0.01}, {0.0, 0.9, 1.0, 10.0, 0.01}, 0, 0, true, false, true},
      {"waits half again a long wait", {0.0, 0.9, 1.0, 600.0, 0.01}, {0.0, 0.9, 1.0, 400.0, 0.01}, 0, 0, true, true, true},
      {"19 % dearer is in", {0.0, 0.9, 1.0, 1.0, 0.0119}, {0.0, 0.9, 1.0, 1.0, 0.01}, 0, 0, true, true, true},
      {"30 % dearer is out", {0.0, 0.9, 1.0, 1.0, 0.013}, {0.0, 0.9, 1.0, 1.0, 0.01}, 0, 0, true, true, false},
      {"a tenth of a cent over a free baseline is in", {0.0, 0.9, 1.0, 1.0, 0.001}, {0.0, 0.9, 1.0, 1.0, 0.0}, 0, 0, true, true, true},
      {"a baseline with nothing measured compares as equal", {0.1, 0.8, 1.0, 500.0, 0.5}, {}, 0, 0, true, true, true},
      {"a candidate with nothing measured counts as zero", {}, {0.1, 0.8, 1.0, 1.0, 0.0}, -0.1, -0.8, true, true, true},
  };
  for (const auto& c : cases) {
    const auto r = CompareVersions(c.candidate, c.baseline, slo);
    EXPECT_NEAR(r.failure_rate_delta, c.failure_rate_delta, 1e-12) << c.what;
    EXPECT_NEAR(r.quality_delta, c.quality_delta, 1e-12) << c.what;
    EXPECT_EQ(r.latency_within_slo, c.latency_within_slo) << c.what;
    EXPECT_EQ(r.queue_wait_within_baseline, c.queue_wait_within_baseline) << c.what;
    EXPECT_EQ(r.cost_within_baseline, c.cost_within_baseline) << c.what;
  }
}

}  // namespace
}  // namespace cogo::orchestrator
