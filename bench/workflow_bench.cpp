// cogo-workflow-bench: the workflow engine's overhead against the bare bus, in one run (issue 12).
// Each round runs, in turn:
//   workflow  a 3-step no-op workflow (publish s1 -> wait -> s2 -> wait -> s3 -> wait -> end):
//             in-process Workers on (orchestrator, workflow) with MakeWorkflowHandler and a no-op
//             Worker fleet on the step route, one shared WakeHub (NOTIFY on); S starter threads
//             (own connections) call StartRun for N runs. Reports runs/s (first start -> last
//             run succeeded), the step hand-off (a step message's finished_at -> the next step
//             message's started_at, from the database) and start -> first step claimed; verifies
//             every run succeeded with exactly 3 step messages, each handled and completed once.
//   e2e       the bare bus on the same machine: P producers, one message per transaction, 3N
//             messages (as many as the workflow's steps), the same no-op fleet: msgs/s.
// and then the ratio (runs/s x 3) / e2e msgs/s. With pg_stat_statements loaded (see
// bench/run-workflow-bench.sh) each phase also reports its statements and transactions per step
// (per message for e2e), the most frequent statements first. Any verification miss exits 1.
// Single-threaded main; workers and starters own their threads.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "cogo/bus/bus.h"
#include "cogo/db/connection.h"
#include "cogo/db/pool.h"
#include "cogo/log/logging.h"
#include "cogo/runtime/worker.h"
#include "cogo/wake/wake_hub.h"
#include "cogo/workflow/definition.h"
#include "cogo/workflow/engine.h"
#include "cogo/workflow/runs.h"
#include "lib/harness.h"
#include "stats.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using namespace std::chrono_literals;
using cogo::bench::BenchFailure;
using cogo::bench::Distribution;
using cogo::bench::DistributionText;
using cogo::bench::LoadAverage;
using cogo::bench::Fleet;
using cogo::bench::Percentile;
using cogo::bench::Seconds;

constexpr const char* kWorkflowId = "bench3";
constexpr const char* kStepService = "bench";
constexpr const char* kStepRole = "step";
constexpr const char* kBareRole = "noop";
constexpr int kStepsPerRun = 3;

// Three no-op steps in a row; each wait has a timeout (a delayed timer message per wait, as any
// real definition has), none fires during the bench.
constexpr const char* kDefinition = R"({
  "description": "cogo-workflow-bench: three no-op steps",
  "start": "s1",
  "nodes": {
    "s1": {"type": "publish", "service": "bench", "role": "step", "payload": {"step": 1}, "next": "w1"},
    "w1": {"type": "wait", "step": "s1", "timeout": "10m", "next": "s2"},
    "s2": {"type": "publish", "service": "bench", "role": "step", "payload": {"step": 2}, "next": "w2"},
    "w2": {"type": "wait", "step": "s2", "timeout": "10m", "next": "s3"},
    "s3": {"type": "publish", "service": "bench", "role": "step", "payload": {"step": 3}, "next": "w3"},
    "w3": {"type": "wait", "step": "s3", "timeout": "10m", "next": "done"},
    "done": {"type": "end"}
  }
})";

struct Config {
  std::string database_url;
  int runs = 2000;         // workflow runs per round (e2e publishes 3x as many messages)
  int rounds = 2;          // workflow + e2e pairs, interleaved
  int paced_runs = 100;    // then runs started one at a time at --paced-rate: the hand-off at rest
  int paced_rate = 10;     // runs per second
  int starters = 8;
  int producers = 8;
  int workers = 2;         // per route: engine workers, step workers, e2e workers
  int concurrency = 4;
  int batch_size = 32;
  int poll_ms = 100;
  int timeout_s = 600;
  std::string json_path;
};

// Handler calls per message id (ids are not dense here: engine and timer messages interleave).
class CallLog {
 public:
  void Record(int64_t id) {
    std::lock_guard lock(mu_);
    ++calls_[id];
  }
  // Empty when exactly `n` ids were each handled once.
  [[nodiscard]] std::string Check(size_t n) const {
    std::lock_guard lock(mu_);
    size_t twice = 0;
    for (const auto& [id, c] : calls_) twice += c > 1 ? 1 : 0;
    if (calls_.size() == n && twice == 0) return {};
    return fmt::format("handler calls: {} distinct messages handled (expected {}), {} more than once",
                       calls_.size(), n, twice);
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<int64_t, int> calls_;
};

void Reset(const Config& cfg) {
  cogo::bench::ResetTables(cfg.database_url, "cogo-workflow-bench",
                           "workflow_signals, workflow_steps, workflow_runs, agent_messages, bus_events, bus_workers");
}

// pg_stat_statements when the server preloads it; otherwise every call is a no-op.
class StatementStats {
 public:
  explicit StatementStats(const Config& cfg) : cfg_(cfg) {
    try {
      auto conn = cogo::db::Connect(cfg.database_url, "cogo-workflow-bench");
      pqxx::nontransaction txn(*conn);
      txn.exec("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
      txn.exec("SELECT pg_stat_statements_reset()");
      available_ = true;
    } catch (const std::exception& e) {
      fmt::print("statement counts off (pg_stat_statements not loaded: {})\n", e.what());
    }
  }
  [[nodiscard]] bool available() const { return available_; }

  void Reset() const {
    if (!available_) return;
    auto conn = cogo::db::Connect(cfg_.database_url, "cogo-workflow-bench");
    pqxx::nontransaction(*conn).exec("SELECT pg_stat_statements_reset()");
  }

  // Statements and transactions per unit (a workflow step, a bare message) since Reset, and the
  // most frequent statements. The bench's own reading connection is not counted (it connects
  // after the phase ended and reads only).
  [[nodiscard]] json Read(double units) const {
    if (!available_) return nullptr;
    auto conn = cogo::db::Connect(cfg_.database_url, "cogo-workflow-bench");
    pqxx::nontransaction txn(*conn);
    const auto rows = txn.exec(
        "SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, total_exec_time, toplevel "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
        "current_database()) AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC");
    double statements = 0, commits = 0, total_ms = 0;  // commits: BEGIN..COMMIT blocks only
    json top = json::array();
    for (const auto& r : rows) {
      const auto query = r[0].as<std::string>();
      const double calls = r[1].as<double>();
      const double ms = r[2].as<double>();
      const bool toplevel = r[3].as<bool>();
      if (query == "COMMIT" || query == "commit") commits += calls;  // autocommit statements not counted
      if (query == "BEGIN" || query == "COMMIT" || query.rfind("BEGIN", 0) == 0) continue;
      if (toplevel) statements += calls;
      total_ms += ms;
      if (top.size() < 14) {
        top.push_back(json{{"query", query.substr(0, 110)},
                       {"per_unit", calls / units},
                       {"mean_ms", calls > 0 ? ms / calls : 0},
                       {"total_ms", ms},
                       {"toplevel", toplevel}});
      }
    }
    return {{"statements_per_unit", statements / units},
            {"transactions_per_unit", commits / units},
            {"exec_ms_per_unit", total_ms / units},
            {"top", top}};
  }

 private:
  const Config& cfg_;
  bool available_ = false;
};

void PrintStatements(const json& s, const char* unit) {
  if (s.is_null()) return;
  fmt::print("  per {}: {:.1f} top-level statements, {:.2f} explicit COMMITs, {:.3f} ms server execution\n",
             unit, s["statements_per_unit"].get<double>(), s["transactions_per_unit"].get<double>(),
             s["exec_ms_per_unit"].get<double>());
  for (const auto& t : s["top"]) {
    fmt::print("    {:>6.2f}/{}  {:>7.3f} ms  {}{}\n", t["per_unit"].get<double>(), unit,
               t["mean_ms"].get<double>(), t["toplevel"].get<bool>() ? "" : "(nested) ",
               t["query"].get<std::string>());
  }
}

cogo::bench::FleetOptions FleetOf(const Config& cfg) {
  return {cfg.database_url, cfg.workers, cfg.concurrency, cfg.batch_size, cfg.poll_ms, true};
}

// Runs `body(i)` for i in [0, n) on `threads` threads, each with its own connection, all
// released at once (`released` is when); returns the seconds until the last one finished.
template <typename Body>
double RunSpread(const Config& cfg, int threads, int64_t n, const char* app, Clock::time_point& released,
                 Body body) {
  std::latch ready(threads + 1);
  std::latch go(1);
  std::vector<std::string> errors(static_cast<size_t>(threads));
  std::vector<std::jthread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      bool counted = false;
      try {
        auto conn = cogo::db::Connect(cfg.database_url, app);
        ready.count_down();
        counted = true;
        go.wait();
        for (int64_t i = t; i < n; i += threads) body(*conn, i);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(t)] = e.what();
        if (!counted) ready.count_down();
      }
    });
  }
  ready.arrive_and_wait();
  released = Clock::now();
  go.count_down();
  pool.clear();
  for (const auto& e : errors) {
    if (!e.empty()) throw BenchFailure(std::string(app) + " failed: " + e);
  }
  return Seconds(Clock::now() - released);
}

std::vector<double> Column(pqxx::transaction_base& txn, const std::string& query) {
  std::vector<double> out;
  for (const auto& r : txn.exec(query)) out.push_back(r[0].as<double>());
  std::sort(out.begin(), out.end());
  return out;
}

// The database's side: every run succeeded, 3 step messages per run, each done with one claim
// and one completion, and no engine message failed (a satisfied wait's timer is cancelled, not
// failed: wait_satisfied).
void VerifyWorkflow(const Config& cfg, int64_t n) {
  auto conn = cogo::db::Connect(cfg.database_url, "cogo-workflow-bench");
  pqxx::work txn(*conn);
  const auto runs = txn.exec1(
      "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM workflow_runs");
  const auto steps = txn.exec_params1(
      "SELECT count(*), count(*) FILTER (WHERE status = 'done'), count(DISTINCT correlation_id), "
      "count(*) FILTER (WHERE (SELECT count(*) FROM bus_events e WHERE e.message_id = m.id AND "
      "e.event = 'completed') <> 1 OR (SELECT count(*) FROM bus_trail e WHERE e.message_id = "
      "m.id AND e.event = 'claimed') <> 1) FROM agent_messages m WHERE service = $1 AND role = $2",
      kStepService, kStepRole);
  const auto per_run = txn.exec_params1(
      "SELECT count(*) FROM (SELECT correlation_id FROM agent_messages WHERE service = $1 AND role "
      "= $2 GROUP BY correlation_id HAVING count(*) <> 3) x",
      kStepService, kStepRole);
  const auto engine = txn.exec_params1(
      "SELECT count(*) FILTER (WHERE status NOT IN ('done', 'queued') AND NOT (status = 'cancelled' AND "
      "payload->>'kind' = 'timer' AND last_error LIKE 'wait_satisfied%')), "
      "count(*) FILTER (WHERE status = 'queued' AND payload->>'kind' <> 'timer') "
      "FROM agent_messages WHERE service = $1 AND role = $2",
      cogo::workflow::kEngineService, cogo::workflow::kEngineRole);
  const auto rows = runs[0].as<int64_t>(), succeeded = runs[1].as<int64_t>();
  const auto step_rows = steps[0].as<int64_t>(), done = steps[1].as<int64_t>();
  const auto runs_with_steps = steps[2].as<int64_t>(), odd_events = steps[3].as<int64_t>();
  const auto odd_runs = per_run[0].as<int64_t>();
  const auto engine_bad = engine[0].as<int64_t>(), engine_left = engine[1].as<int64_t>();
  if (rows != n || succeeded != n || step_rows != kStepsPerRun * n || done != step_rows ||
      runs_with_steps != n || odd_events != 0 || odd_runs != 0 || engine_bad != 0 || engine_left != 0) {
    throw BenchFailure(fmt::format(
        "database check failed: {} runs ({} succeeded), {} step messages ({} done) in {} runs, {} "
        "without exactly one claim and one completion, {} runs without exactly 3 steps, {} engine "
        "messages failed, {} non-timer engine messages left queued; expected {} runs",
        rows, succeeded, step_rows, done, runs_with_steps, odd_events, odd_runs, engine_bad,
        engine_left, n));
  }
}

// `paced`: one starter, cfg.paced_runs runs at cfg.paced_rate (an unloaded engine's hand-off);
// otherwise cfg.starters starters, cfg.runs runs as fast as they go (throughput).
json WorkflowRound(const Config& cfg, const StatementStats& stats, int round, bool paced) {
  Reset(cfg);
  const int64_t n = paced ? cfg.paced_runs : cfg.runs;
  auto parsed = cogo::workflow::ParseDefinition(kWorkflowId, kDefinition);
  if (const auto* error = std::get_if<cogo::workflow::DefinitionError>(&parsed)) {
    throw BenchFailure("bench definition: " + error->ToString());
  }
  std::map<std::string, cogo::workflow::Definition> definitions;
  definitions.emplace(kWorkflowId, std::get<cogo::workflow::Definition>(std::move(parsed)));
  auto catalog = std::make_shared<cogo::workflow::DefinitionCatalog>(std::move(definitions));
  {
    auto conn = cogo::db::Connect(cfg.database_url, "cogo-workflow-bench");
    catalog->Register(*conn);
  }
  auto pool = std::make_shared<cogo::db::ConnectionPool>(
      cfg.database_url, "cogo-workflow-engine", static_cast<size_t>(cfg.workers * cfg.concurrency));

  CallLog steps;
  Fleet fleet(FleetOf(cfg));
  fleet.Add(cogo::workflow::kEngineService, cogo::workflow::kEngineRole,
            cogo::workflow::MakeWorkflowHandler(catalog, pool, cogo::log::Get("bench")));
  fleet.Add(kStepService, kStepRole, cogo::bench::Recording(steps));
  fleet.Start();  // returns with the workers idle, waiting for work

  const double load = LoadAverage();
  stats.Reset();
  Clock::time_point start;
  const auto gap = std::chrono::microseconds(1'000'000 / cfg.paced_rate);
  const double start_s = RunSpread(cfg, paced ? 1 : cfg.starters, n, "cogo-workflow-bench-starter", start,
                                   [&](pqxx::connection& conn, int64_t i) {
    if (paced) std::this_thread::sleep_until(start + gap * i);
    cogo::workflow::StartRequest request;
    request.tenant = "bench";
    request.workflow_id = kWorkflowId;
    const auto started = cogo::workflow::StartRun(conn, *catalog, request);
    if (!started.created) throw BenchFailure("run " + std::to_string(i) + " was not created");
  });
  const auto deadline = start + std::chrono::seconds(cfg.timeout_s);
  // start + one step_finished per step, each an engine completion.
  fleet.WaitCompleted(cogo::workflow::kEngineRole, static_cast<uint64_t>(n * (kStepsPerRun + 1)), deadline);
  const double seconds = Seconds(Clock::now() - start);
  const json statements = stats.Read(static_cast<double>(n * kStepsPerRun));
  const uint64_t notifications = fleet.notifications();
  fleet.Drain();
  cogo::bench::CheckStats(fleet.Stats(kStepRole), static_cast<uint64_t>(n * kStepsPerRun), "step");
  cogo::bench::CheckStats(fleet.Stats(cogo::workflow::kEngineRole), static_cast<uint64_t>(n * (kStepsPerRun + 1)), "engine");
  if (auto problem = steps.Check(static_cast<size_t>(n * kStepsPerRun)); !problem.empty()) {
    throw BenchFailure(problem);
  }
  VerifyWorkflow(cfg, n);

  auto conn = cogo::db::Connect(cfg.database_url, "cogo-workflow-bench");
  pqxx::work txn(*conn);
  // Step k's message -> step k+1's; the engine's step_finished message in between splits it.
  const std::string pairs =
      "FROM workflow_steps a JOIN workflow_steps b ON b.run_id = a.run_id AND b.activation = 1 "
      "AND b.node = CASE a.node WHEN 's1' THEN 's2' WHEN 's2' THEN 's3' END "
      "JOIN agent_messages m1 ON m1.id = a.message_id JOIN agent_messages m2 ON m2.id = b.message_id "
      "JOIN agent_messages e ON e.service = 'orchestrator' AND e.role = 'workflow' AND e.tenant = "
      "m1.tenant AND e.idempotency_key = 'wf-step-finished:' || m1.id "
      "WHERE a.node IN ('s1', 's2') AND a.activation = 1";
  const auto ms = [](const std::string& a, const std::string& b) {
    return "SELECT extract(epoch FROM (" + b + " - " + a + ")) * 1000 ";
  };
  const json handoff = Distribution(Column(txn, ms("m1.finished_at", "m2.started_at") + pairs));
  const json to_engine = Distribution(Column(txn, ms("m1.finished_at", "e.started_at") + pairs));
  const json in_engine = Distribution(Column(txn, ms("e.started_at", "e.finished_at") + pairs));
  const json to_next = Distribution(Column(txn, ms("e.finished_at", "m2.started_at") + pairs));
  const json first_step = Distribution(Column(
      txn, ms("r.created_at", "m.started_at") +
               "FROM workflow_runs r JOIN workflow_steps s ON s.run_id = r.id AND s.node = 's1' "
               "JOIN agent_messages m ON m.id = s.message_id"));
  const auto span = txn.exec1(
      "SELECT extract(epoch FROM (max(finished_at) - min(created_at))) FROM workflow_runs");
  const double db_seconds = span[0].as<double>();
  const auto counts = txn.exec1(
      "SELECT count(*), count(*) FILTER (WHERE payload->>'kind' = 'timer') FROM agent_messages");
  txn.commit();

  const double runs_per_s = static_cast<double>(n) / seconds;
  fmt::print("workflow {} {}: {} runs in {:.3f} s = {:.0f} runs/s = {:.0f} steps/s (database span "
             "{:.3f} s; starters done in {:.3f} s; {} messages of which {} timers; {} NOTIFYs; "
             "verified; load {:.1f})\n",
             paced ? fmt::format("paced ({}/s)", cfg.paced_rate) : "round", round, n, seconds,
             runs_per_s, runs_per_s * kStepsPerRun, db_seconds, start_s,
             counts[0].as<int64_t>(), counts[1].as<int64_t>(), notifications, load);
  fmt::print("  step hand-off          {}\n", DistributionText(handoff));
  fmt::print("    finished -> engine claimed   {}\n", DistributionText(to_engine));
  fmt::print("    engine claimed -> advanced   {}\n", DistributionText(in_engine));
  fmt::print("    advanced -> next claimed     {}\n", DistributionText(to_next));
  fmt::print("  start -> first step claimed {}\n", DistributionText(first_step));
  PrintStatements(statements, "step");
  std::fflush(stdout);
  return {{"round", round},
          {"paced", paced},
          {"runs", n},
          {"seconds", seconds},
          {"database_seconds", db_seconds},
          {"runs_per_s", runs_per_s},
          {"steps_per_s", runs_per_s * kStepsPerRun},
          {"handoff", handoff},
          {"handoff_to_engine_claim", to_engine},
          {"handoff_engine_claim_to_advance", in_engine},
          {"handoff_advance_to_next_claim", to_next},
          {"start_to_first_step", first_step},
          {"messages", counts[0].as<int64_t>()},
          {"timer_messages", counts[1].as<int64_t>()},
          {"notifications", notifications},
          {"loadavg_1m", load},
          {"statements", statements},
          {"verified", true}};
}

json BareRound(const Config& cfg, const StatementStats& stats, int round) {
  Reset(cfg);
  const int64_t n = static_cast<int64_t>(cfg.runs) * kStepsPerRun;
  CallLog calls;
  Fleet fleet(FleetOf(cfg));
  fleet.Add(kStepService, kBareRole, cogo::bench::Recording(calls));
  fleet.Start();  // returns with the workers idle, waiting for work
  const double load = LoadAverage();
  stats.Reset();
  Clock::time_point start;
  (void)RunSpread(cfg, cfg.producers, n, "cogo-workflow-bench-producer", start, [](pqxx::connection& conn, int64_t i) {
    cogo::bus::Bus bus(conn);
    cogo::bus::PublishRequest r;
    r.service = kStepService;
    r.role = kBareRole;
    r.tenant = "bench";
    r.payload_json = "{\"n\":" + std::to_string(i) + "}";
    (void)bus.Publish(r);
  });
  fleet.WaitCompleted(kBareRole, static_cast<uint64_t>(n), start + std::chrono::seconds(cfg.timeout_s));
  const double seconds = Seconds(Clock::now() - start);
  const json statements = stats.Read(static_cast<double>(n));
  fleet.Drain();
  cogo::bench::CheckStats(fleet.Stats(kBareRole), static_cast<uint64_t>(n), "e2e");
  if (auto problem = calls.Check(static_cast<size_t>(n)); !problem.empty()) throw BenchFailure(problem);
  {
    auto conn = cogo::db::Connect(cfg.database_url, "cogo-workflow-bench");
    pqxx::work txn(*conn);
    const auto row = txn.exec1(
        "SELECT count(*), count(*) FILTER (WHERE status = 'done'), "
        "(SELECT count(*) FROM bus_events WHERE event = 'completed'), "
        "(SELECT count(DISTINCT message_id) FROM bus_events WHERE event = 'completed') FROM agent_messages");
    if (row[0].as<int64_t>() != n || row[1].as<int64_t>() != n || row[2].as<int64_t>() != n ||
        row[3].as<int64_t>() != n) {
      throw BenchFailure(fmt::format("e2e database check: {} rows, {} done, {} completions of {} messages",
                                     row[0].as<int64_t>(), row[1].as<int64_t>(), row[2].as<int64_t>(),
                                     row[3].as<int64_t>()));
    }
  }
  const double rate = static_cast<double>(n) / seconds;
  fmt::print("e2e      round {}: {} msgs in {:.3f} s = {:.0f} msg/s ({} producers; exactly-once ok; load {:.1f})\n",
             round, n, seconds, rate, cfg.producers, load);
  PrintStatements(statements, "msg");
  std::fflush(stdout);
  return {{"round", round}, {"messages", n}, {"seconds", seconds}, {"msg_per_s", rate},
          {"loadavg_1m", load}, {"statements", statements}, {"exactly_once", true}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cogo-workflow-bench: a 3-step no-op workflow against the bare bus, verified"};
  Config cfg;
  cogo::bench::AddDatabaseOption(app, cfg.database_url);
  app.add_option("--runs", cfg.runs, "workflow runs per round (e2e: 3x as many messages)")
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--rounds", cfg.rounds, "workflow + e2e pairs, interleaved")->check(CLI::Range(1, 100));
  app.add_option("--paced-runs", cfg.paced_runs, "runs started one at a time after the rounds (0: none)")
      ->check(CLI::Range(0, 1'000'000));
  app.add_option("--paced-rate", cfg.paced_rate, "paced runs per second")->check(CLI::Range(1, 10000));
  app.add_option("--starters", cfg.starters, "threads calling StartRun")->check(CLI::Range(1, 64));
  app.add_option("--producers", cfg.producers, "e2e producer threads")->check(CLI::Range(1, 64));
  app.add_option("--workers", cfg.workers, "in-process Workers per route")->check(CLI::Range(1, 64));
  app.add_option("--concurrency", cfg.concurrency, "handler threads per worker")->check(CLI::Range(1, 256));
  app.add_option("--batch-size", cfg.batch_size, "most messages one claim takes")->check(CLI::Range(1, 10000));
  app.add_option("--poll-ms", cfg.poll_ms, "the workers' poll interval")->check(CLI::Range(1, 60000));
  app.add_option("--timeout", cfg.timeout_s, "seconds before a phase fails")->check(CLI::Range(1, 86400));
  app.add_option("--json", cfg.json_path, "write the results to this file");
  CLI11_PARSE(app, argc, argv);
  return cogo::bench::RunBench("cogo-workflow-bench", cfg.database_url, cfg.json_path, [&](json& results) {
    fmt::print("workers={} x concurrency={} per route, batch={}, {} starters, {} producers\n", cfg.workers,
               cfg.concurrency, cfg.batch_size, cfg.starters, cfg.producers);
    const StatementStats stats(cfg);
    json workflow = json::array(), bare = json::array();
    std::vector<double> ratios;
    for (int round = 1; round <= cfg.rounds; ++round) {
      workflow.push_back(WorkflowRound(cfg, stats, round, false));
      bare.push_back(BareRound(cfg, stats, round));
      ratios.push_back(workflow.back()["steps_per_s"].get<double>() / bare.back()["msg_per_s"].get<double>());
    }
    if (cfg.paced_runs > 0) results["workflow_paced"] = WorkflowRound(cfg, stats, 1, true);
    results["workflow"] = workflow;
    results["e2e"] = bare;
    results["ratios"] = ratios;
    fmt::print("\n{:<6} {:>9} {:>9} {:>11} {:>9} {:>22} {:>22}\n", "round", "runs/s", "steps/s",
               "e2e msg/s", "ratio", "hand-off p50/p90/p99", "start->s1 p50/p99");
    for (size_t i = 0; i < ratios.size(); ++i) {
      const auto& w = workflow[i];
      fmt::print("{:<6} {:>9.0f} {:>9.0f} {:>11.0f} {:>9.2f} {:>22} {:>22}\n", i + 1,
                 w["runs_per_s"].get<double>(), w["steps_per_s"].get<double>(),
                 bare[i]["msg_per_s"].get<double>(), ratios[i],
                 fmt::format("{:.1f}/{:.1f}/{:.1f} ms", w["handoff"]["p50_ms"].get<double>(),
                             w["handoff"]["p90_ms"].get<double>(), w["handoff"]["p99_ms"].get<double>()),
                 fmt::format("{:.1f}/{:.1f} ms", w["start_to_first_step"]["p50_ms"].get<double>(),
                             w["start_to_first_step"]["p99_ms"].get<double>()));
    }
    if (cfg.paced_runs > 0) {
      const auto& p = results["workflow_paced"];
      fmt::print("paced  {} runs at {}/s: hand-off {}; start->s1 {}\n", cfg.paced_runs, cfg.paced_rate,
                 DistributionText(p["handoff"]), DistributionText(p["start_to_first_step"]));
    }
    fmt::print("ratio = workflow steps/s (runs/s x 3) / bare e2e msg/s; the issue's target: >= 1/3, "
               "hand-off p50 <= 5 ms\n");
  });
}
