// cogo-bench: cogo's own bus benchmark. Runs in-process Workers (the real runtime: claimer,
// handler and flusher threads) with a no-op handler against a database the caller names, and
// verifies exactly-once on every run: each message's handler ran once, and the database shows
// every row done with one `completed` event carrying its claim (one audit row per attempt,
// sql/019) and no other event. Any violation exits non-zero.
//   drain    N messages batch-published first, then W workers drain them; median of R runs
//   e2e      8 producers, one message per transaction, while the workers process
//   latency  100 msg/s for 10 s to idle workers, commit -> handler start, NOTIFY and poll-only
//   sql      the claim/complete statements alone on two connections, each one timed
//   steady   a constant --rate from --producers connections for --duration, sampled every
//            --sample seconds (throughput, dispatch latency, claim cost from pg_stat_statements,
//            bus table sizes, dead rows, autovacuums) to a CSV; the first and last --window
//            compared (bench/run-soak.sh adds the retention and reclaimer daemons)
//   delayed  sql without and with --delayed messages queued, in turn: what delayed rows cost a
//            claim (and an idle worker's empty claim)
//   all      drain, e2e and latency in turn, with one summary table
// --delayed D queues D messages due in an hour on the same route before a drain or sql run's N
// (ids 1..D, so they sort ahead of the run's messages in claim order; the run's are D+1..D+N);
// the checks require them still queued, never claimed. Every mode starts from TRUNCATE
// agent_messages, bus_events, bus_workers RESTART IDENTITY and VACUUM ANALYZE; a drain's queue is
// then vacuumed, analyzed and checkpointed before the clock starts, as the peers' benches do
// after enqueueing (bench/peers/*/bench.js): every system drains under the same rules.
// Single-threaded main; the workers and producers own their threads.
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
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "cogo/bus/bus.h"
#include "cogo/db/connection.h"
#include "cogo/log/logging.h"
#include "cogo/runtime/worker.h"
#include "cogo/wake/wake_hub.h"
#include "lib/harness.h"
#include "stats.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using namespace std::chrono_literals;
using cogo::bench::BenchFailure;
using cogo::bench::Fleet;
using cogo::bench::LoadAverage;
using cogo::bench::Median;
using cogo::bench::Percentile;
using cogo::bench::Seconds;

constexpr const char* kService = "bench";
constexpr const char* kRole = "noop";

struct Config {
  std::string database_url;
  int messages = 20000;
  int runs = 3;
  int workers = 2;
  int concurrency = 4;
  int batch_size = 256;
  int publish_chunk = 5000;
  int producers = 8;
  int rate = 100;          // latency: messages per second
  int duration_s = 10;     // latency: seconds
  bool random_arrivals = false;  // latency: exponential gaps (a Poisson stream) instead of even ones
  int poll_ms = 100;       // the workers' poll interval (the only wake-up in poll-only mode)
  int timeout_s = 300;     // a run that takes longer fails
  int sample_s = 30;       // steady: seconds per sample
  int window_s = 600;      // steady: the first and last windows compared
  std::string csv_path;    // steady: one row per sample
  int delayed = 0;         // drain, sql: messages due in an hour queued beside the run's
  std::string json_path;
};

int64_t NowNs() {
  static const Clock::time_point origin = Clock::now();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - origin).count();
}

// Handler calls per message id (ids are first..first+N-1 after RESTART IDENTITY; first is 1
// unless delayed messages came before) and when each started. Written by handler threads, read
// after the workers drained. Slots are indexed by id - first + 1.
class CallLog {
 public:
  explicit CallLog(size_t n, int64_t first = 1) : first_(first), calls_(n + 1), start_ns_(n + 1) {}

  void Record(int64_t message_id) {
    const int64_t now = NowNs();
    const int64_t id = message_id - first_ + 1;
    if (id < 1 || static_cast<size_t>(id) >= calls_.size()) {
      out_of_range_.fetch_add(1);
      return;
    }
    if (calls_[static_cast<size_t>(id)].fetch_add(1) == 0) start_ns_[static_cast<size_t>(id)] = now;
  }

  // 0 until the first call of `id` started; safe to read while handlers run.
  [[nodiscard]] int64_t start_ns(int64_t id) const { return start_ns_[static_cast<size_t>(id)].load(); }

  // When the first call of any id started (NowNs); 0 before any did.
  [[nodiscard]] int64_t first_start_ns() const {
    int64_t first = 0;
    for (size_t id = 1; id < start_ns_.size(); ++id) {
      const int64_t t = start_ns_[id].load();
      if (t != 0 && (first == 0 || t < first)) first = t;
    }
    return first;
  }

  // Empty when every id 1..last (default: all) was handled exactly once and no other.
  [[nodiscard]] std::string Check(size_t last = 0) const {
    if (last == 0) last = calls_.size() - 1;
    size_t never = 0, twice = 0, unexpected = out_of_range_.load();
    int64_t first_bad = 0;
    for (size_t id = 1; id < calls_.size(); ++id) {
      const int c = calls_[id].load();
      if (id > last) {  // never published
        unexpected += c;
        continue;
      }
      if (c == 1) continue;
      (c == 0 ? never : twice) += 1;
      if (first_bad == 0) first_bad = static_cast<int64_t>(id) + first_ - 1;
    }
    if (never == 0 && twice == 0 && unexpected == 0) return {};
    return fmt::format("handler calls: {} ids never handled, {} handled more than once, {} calls "
                       "for unknown ids (first bad id {})",
                       never, twice, unexpected, first_bad);
  }

 private:
  const int64_t first_;
  std::vector<std::atomic<uint8_t>> calls_;
  std::vector<std::atomic<int64_t>> start_ns_;  // each slot written once, by the thread of the first call
  std::atomic<uint64_t> out_of_range_{0};
};

cogo::bus::PublishRequest Request(int64_t n, int64_t delay_ms = 0) {
  cogo::bus::PublishRequest r;
  r.delay_ms = delay_ms;
  r.service = kService;
  r.role = kRole;
  r.tenant = "bench";
  r.payload_json = "{\"n\":" + std::to_string(n) + "}";
  return r;
}

void Reset(const Config& cfg) {
  cogo::bench::ResetTables(cfg.database_url, "cogo-bench", "agent_messages, bus_events, bus_workers");
}

// The filled queue as the peers' drains start from it: vacuumed, analyzed, checkpointed.
void SettleQueue(const Config& cfg) {
  auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench");
  pqxx::nontransaction(*conn).exec("VACUUM ANALYZE agent_messages");
  pqxx::nontransaction(*conn).exec("CHECKPOINT");
}

// The database's side of exactly-once: the run's n rows (after the `delayed` ones), all done,
// one attempt each: one `completed` event that carries its claim (owner, attempt 1, fence 1,
// claimed_at), and nothing else; and the delayed rows still queued, never claimed.
void VerifyDatabase(const Config& cfg, int64_t n, int64_t delayed = 0) {
  auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench");
  pqxx::work txn(*conn);
  const auto m = txn.exec_params1(
      "SELECT count(*), count(*) FILTER (WHERE status = 'done'), coalesce(min(id), 0) - $1, "
      "coalesce(max(id), 0) - $1 FROM agent_messages WHERE id > $1",
      delayed);
  const auto waiting = txn.exec_params1(
      "SELECT count(*), count(*) FILTER (WHERE status = 'queued' AND attempts = 0 AND fence = 0 "
      "AND retry_at > now()) FROM agent_messages WHERE id <= $1",
      delayed);
  if (waiting[0].as<int64_t>() != delayed || waiting[1].as<int64_t>() != delayed) {
    throw BenchFailure(fmt::format("database check failed: {} rows before the run's, {} of them "
                                   "delayed and untouched; expected {}",
                                   waiting[0].as<int64_t>(), waiting[1].as<int64_t>(), delayed));
  }
  const auto e = txn.exec1(
      "SELECT count(*) FILTER (WHERE event = 'completed'), "
      "count(DISTINCT message_id) FILTER (WHERE event = 'completed'), "
      "count(*) FILTER (WHERE event = 'completed' AND detail ? 'claimed_at' AND detail ? 'owner' "
      "AND detail->>'attempt' = '1' AND detail->>'fence' = '1'), "
      "count(*) FILTER (WHERE event <> 'completed') FROM bus_events");
  const int64_t rows = m[0].as<int64_t>(), done = m[1].as<int64_t>();
  const int64_t min_id = m[2].as<int64_t>(), max_id = m[3].as<int64_t>();
  const int64_t completed = e[0].as<int64_t>(), distinct = e[1].as<int64_t>();
  const int64_t claimed = e[2].as<int64_t>(), other = e[3].as<int64_t>();
  if (rows != n || done != n || min_id != 1 || max_id != n || completed != n || distinct != n ||
      claimed != n || other != 0) {
    throw BenchFailure(fmt::format(
        "database check failed: {} rows (ids {}..{}), {} done, {} completed events for {} "
        "messages, {} carrying their claim, {} other events; expected {} of each and no others",
        rows, min_id, max_id, done, completed, distinct, claimed, other, n));
  }
}

cogo::bench::FleetOptions FleetOf(const Config& cfg, bool notify) {
  return {cfg.database_url, cfg.workers, cfg.concurrency, cfg.batch_size, cfg.poll_ms, notify};
}

// Stops every worker; throws unless their stats add up to exactly `n` clean completions.
void DrainAndCheck(Fleet& fleet, uint64_t n) {
  fleet.Drain();
  cogo::bench::CheckStats(fleet.Stats(), n, "bench");
}

void CheckCalls(const CallLog& log, size_t last = 0) {
  if (auto problem = log.Check(last); !problem.empty()) throw BenchFailure(problem);
}

json ConfigJson(const Config& cfg) {
  return {{"workers", cfg.workers},       {"concurrency", cfg.concurrency},
          {"batch_size", cfg.batch_size}, {"poll_ms", cfg.poll_ms},
          {"messages", cfg.messages},     {"publish_chunk", cfg.publish_chunk}};
}

std::string ConfigText(const Config& cfg) {
  return fmt::format("workers={} concurrency={} batch={}", cfg.workers, cfg.concurrency,
                     cfg.batch_size);
}

// Batch-publishes messages first..last (their ids) in chunks; returns the elapsed seconds.
double PublishRange(const Config& cfg, int64_t first_id, int64_t last_id, int64_t delay_ms) {
  auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench-publish");
  cogo::bus::Bus bus(*conn);
  const auto start = Clock::now();
  for (int64_t first = first_id; first <= last_id; first += cfg.publish_chunk) {
    std::vector<cogo::bus::PublishRequest> chunk;
    for (int64_t i = first; i < std::min<int64_t>(first + cfg.publish_chunk, last_id + 1); ++i) {
      chunk.push_back(Request(i, delay_ms));
    }
    const auto published = bus.PublishBatch(chunk);
    for (size_t k = 0; k < published.size(); ++k) {
      if (published[k].id != first + static_cast<int64_t>(k) || !published[k].created) {
        throw BenchFailure(fmt::format("publish: message {} got id {}", first + k,
                                       published[k].id));
      }
    }
  }
  return Seconds(Clock::now() - start);
}

// cfg.delayed messages due in an hour (ids 1..D), then the run's n (D+1..D+n); returns the
// seconds the run's messages took.
double PublishAll(const Config& cfg, int64_t n) {
  if (cfg.delayed > 0) PublishRange(cfg, 1, cfg.delayed, 3'600'000);
  return PublishRange(cfg, cfg.delayed + 1, cfg.delayed + n, 0);
}

// The end of every throughput run: drain the workers, verify exactly-once three ways (worker
// stats, per-id handler calls, database), and describe the run. Throws BenchFailure on any miss.
json FinishRun(Fleet& fleet, const CallLog& log, const Config& cfg, int run, int64_t n,
               double seconds, double publish_s, double load) {
  DrainAndCheck(fleet, static_cast<uint64_t>(n));
  CheckCalls(log);
  VerifyDatabase(cfg, n, cfg.delayed);
  return {{"run", run},
          {"seconds", seconds},
          {"msg_per_s", static_cast<double>(n) / seconds},
          {"publish_seconds", publish_s},
          {"publish_msg_per_s", static_cast<double>(n) / publish_s},
          {"loadavg_1m", load},
          {"exactly_once", true}};
}

json Drain(const Config& cfg) {
  json runs = json::array();
  std::vector<double> rates;
  std::vector<double> first_call, after_first_call;
  for (int run = 1; run <= cfg.runs; ++run) {
    Reset(cfg);
    const int64_t n = cfg.messages;
    const double publish_s = PublishAll(cfg, n);
    SettleQueue(cfg);
    CallLog log(static_cast<size_t>(n), cfg.delayed + 1);
    Fleet fleet(FleetOf(cfg, true));
    fleet.Add(kService, kRole, cogo::bench::Recording(log));
    const double load = LoadAverage();
    const int64_t start_ns = NowNs();
    const auto start = Clock::now();
    fleet.Start();
    fleet.WaitCompleted(kRole, static_cast<uint64_t>(n), start + std::chrono::seconds(cfg.timeout_s));
    const double seconds = Seconds(Clock::now() - start);
    json result = FinishRun(fleet, log, cfg, run, n, seconds, publish_s, load);
    // Split at the first handler call, as the peers' benches do: the workers' start-up
    // (connections, first claim) and the rate from then on (docs/benchmarks.md, "Start-up and
    // the drain").
    const double first_call_s = static_cast<double>(log.first_start_ns() - start_ns) / 1e9;
    result["first_call_seconds"] = first_call_s;
    result["after_first_call_msg_per_s"] = static_cast<double>(n) / (seconds - first_call_s);
    first_call.push_back(first_call_s);
    const double rate = result["msg_per_s"].get<double>();
    rates.push_back(rate);
    after_first_call.push_back(result["after_first_call_msg_per_s"].get<double>());
    runs.push_back(result);
    fmt::print("drain   run {}: {} msgs in {:.3f} s = {:>8.0f} msg/s  (first call after {:.3f} s, {:.0f} msg/s "
               "from it; publish {:.0f} msg/s; exactly-once ok; load {:.1f})  [{}]\n",
               run, n, seconds, rate, result["first_call_seconds"].get<double>(), after_first_call.back(),
               static_cast<double>(n) / publish_s, load, ConfigText(cfg));
    std::fflush(stdout);
  }
  const double median = Median(rates);
  fmt::print("drain   median of {}: {:.0f} msg/s ({:.0f} msg/s from the first call)\n", cfg.runs, median,
             Median(after_first_call));
  return {{"config", ConfigJson(cfg)},
          {"runs", runs},
          {"median_msg_per_s", median},
          {"median_first_call_seconds", Median(first_call)},
          {"median_after_first_call_msg_per_s", Median(after_first_call)}};
}

json EndToEnd(const Config& cfg) {
  json runs = json::array();
  std::vector<double> rates;
  for (int run = 1; run <= cfg.runs; ++run) {
    Reset(cfg);
    const int64_t n = cfg.messages;
    CallLog log(static_cast<size_t>(n));
    Fleet fleet(FleetOf(cfg, true));
    fleet.Add(kService, kRole, cogo::bench::Recording(log));
    fleet.Start();  // returns with the workers idle, waiting for work

    std::latch ready(cfg.producers + 1);
    std::latch go(1);
    std::atomic<int64_t> last_publish_ns{0};
    std::vector<std::string> errors(static_cast<size_t>(cfg.producers));
    std::vector<std::jthread> producers;
    for (int p = 0; p < cfg.producers; ++p) {
      producers.emplace_back([&, p] {
        bool counted = false;
        try {
          auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench-producer");
          cogo::bus::Bus bus(*conn);
          ready.count_down();
          counted = true;
          go.wait();
          for (int64_t i = p; i < n; i += cfg.producers) bus.Publish(Request(i));
          const int64_t t = NowNs();
          int64_t prev = last_publish_ns.load();
          while (prev < t && !last_publish_ns.compare_exchange_weak(prev, t)) {
          }
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(p)] = e.what();
          if (!counted) ready.count_down();
        }
      });
    }
    ready.arrive_and_wait();
    const double load = LoadAverage();
    const int64_t start_ns = NowNs();
    const auto start = Clock::now();
    go.count_down();
    try {
      fleet.WaitCompleted(kRole, static_cast<uint64_t>(n), start + std::chrono::seconds(cfg.timeout_s));
    } catch (...) {
      for (const auto& e : errors) {
        if (!e.empty()) throw BenchFailure("producer failed: " + e);
      }
      throw;
    }
    const double seconds = Seconds(Clock::now() - start);
    producers.clear();
    for (const auto& e : errors) {
      if (!e.empty()) throw BenchFailure("producer failed: " + e);
    }
    const double publish_s = static_cast<double>(last_publish_ns.load() - start_ns) / 1e9;
    const uint64_t notifications = fleet.notifications();
    json result = FinishRun(fleet, log, cfg, run, n, seconds, publish_s, load);
    result["notifications"] = notifications;
    const double rate = result["msg_per_s"].get<double>();
    rates.push_back(rate);
    runs.push_back(result);
    fmt::print("e2e     run {}: {} msgs in {:.3f} s = {:>8.0f} msg/s  (producers done at {:.0f} "
               "msg/s; {} NOTIFYs; exactly-once ok; load {:.1f})  [{} producers, {}]\n",
               run, n, seconds, rate, static_cast<double>(n) / publish_s,
               notifications, load, cfg.producers, ConfigText(cfg));
    std::fflush(stdout);
  }
  const double median = Median(rates);
  fmt::print("e2e     median of {}: {:.0f} msg/s\n", cfg.runs, median);
  json config = ConfigJson(cfg);
  config["producers"] = cfg.producers;
  return {{"config", config}, {"runs", runs}, {"median_msg_per_s", median}};
}

json LatencyRun(const Config& cfg, bool notify) {
  Reset(cfg);
  const int64_t n = static_cast<int64_t>(cfg.rate) * cfg.duration_s;
  CallLog log(static_cast<size_t>(n));
  Fleet fleet(FleetOf(cfg, notify));
  fleet.Add(kService, kRole, cogo::bench::Recording(log));
  fleet.Start();  // returns with the workers idle, waiting for work

  std::vector<int64_t> commit_ns(static_cast<size_t>(n) + 1, 0);
  const double load = LoadAverage();
  {
    auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench-producer");
    cogo::bus::Bus bus(*conn);
    const auto interval = std::chrono::nanoseconds(1'000'000'000 / cfg.rate);
    std::mt19937_64 rng(1);  // the same stream every run
    std::exponential_distribution<double> gap_s(cfg.rate);
    auto due = Clock::now();
    for (int64_t i = 1; i <= n; ++i) {
      std::this_thread::sleep_until(due);
      due += cfg.random_arrivals
                 ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap_s(rng)))
                 : std::chrono::duration_cast<Clock::duration>(interval);
      const auto published = bus.Publish(Request(i));
      const int64_t t = NowNs();
      if (published.id != i) throw BenchFailure(fmt::format("message {} got id {}", i, published.id));
      commit_ns[static_cast<size_t>(i)] = t;
    }
  }
  fleet.WaitCompleted(kRole, static_cast<uint64_t>(n), Clock::now() + std::chrono::seconds(cfg.timeout_s));
  const uint64_t notifications = fleet.notifications();
  DrainAndCheck(fleet, static_cast<uint64_t>(n));
  CheckCalls(log);
  VerifyDatabase(cfg, n);

  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(n));
  int64_t before_commit_return = 0;
  for (int64_t i = 1; i <= n; ++i) {
    const int64_t d = log.start_ns(i) - commit_ns[static_cast<size_t>(i)];
    if (d < 0) ++before_commit_return;  // the server committed; the client had not heard yet
    ms.push_back(static_cast<double>(d) / 1e6);
  }
  std::sort(ms.begin(), ms.end());
  json out = {{"mode", notify ? "notify" : "poll"},
              {"messages", n},
              {"rate_per_s", cfg.rate},
              {"arrivals", cfg.random_arrivals ? "random" : "even"},
              {"poll_ms", cfg.poll_ms},
              {"p50_ms", Percentile(ms, 50)},
              {"p90_ms", Percentile(ms, 90)},
              {"p99_ms", Percentile(ms, 99)},
              {"max_ms", ms.back()},
              {"min_ms", ms.front()},
              {"started_before_commit_returned", before_commit_return},
              {"notifications", notifications},
              {"loadavg_1m", load},
              {"exactly_once", true}};
  fmt::print("latency {:<6}: {} msgs at {}/s{}: p50 {:.2f} ms  p90 {:.2f} ms  p99 {:.2f} ms  max "
             "{:.2f} ms  (poll {} ms; {} NOTIFYs; exactly-once ok; load {:.1f})  [{}]\n",
             notify ? "notify" : "poll", n, cfg.rate, cfg.random_arrivals ? " (random)" : "",
             Percentile(ms, 50), Percentile(ms, 90),
             Percentile(ms, 99), ms.back(), cfg.poll_ms, notifications, load, ConfigText(cfg));
  std::fflush(stdout);
  return out;
}

json Latency(const Config& cfg) {
  json out = {{"config", ConfigJson(cfg)}};
  out["notify"] = LatencyRun(cfg, true);
  out["poll"] = LatencyRun(cfg, false);
  return out;
}

// The claim and complete statements without the runtime: one connection claims (asynchronous
// commit, as the worker's claimer), another completes (synchronous), in turn, each timed. Then
// kEmptyClaims claims that find nothing due: what an idle worker's poll costs.
constexpr int kEmptyClaims = 200;

json Sql(const Config& cfg) {
  Reset(cfg);
  const int64_t n = cfg.messages;
  PublishAll(cfg, n);
  auto claim_conn = cogo::db::Connect(cfg.database_url, "cogo-bench-claim");
  pqxx::nontransaction(*claim_conn).exec("SET synchronous_commit = off");
  auto complete_conn = cogo::db::Connect(cfg.database_url, "cogo-bench-complete");
  cogo::bus::Bus claimer(*claim_conn);
  cogo::bus::Bus completer(*complete_conn);
  const cogo::bus::ClaimRequest request{"bench-sql", kService, kRole, {0}, cfg.batch_size, 30000};
  double claim_s = 0, complete_s = 0;
  int64_t done = 0, rounds = 0;
  const auto start = Clock::now();
  while (true) {
    auto t0 = Clock::now();
    auto claimed = claimer.Claim(request);
    auto t1 = Clock::now();
    claim_s += Seconds(t1 - t0);
    if (claimed.empty()) break;
    std::vector<cogo::bus::Completion> completions;
    for (const auto& m : claimed) completions.push_back({m.lease, {}, {}, {}});
    t0 = Clock::now();
    const auto held = completer.CompleteBatch(completions);
    complete_s += Seconds(Clock::now() - t0);
    done += std::count(held.begin(), held.end(), true);
    ++rounds;
  }
  const double total = Seconds(Clock::now() - start);
  if (done != n) throw BenchFailure(fmt::format("sql: completed {} of {}", done, n));
  const auto empty_start = Clock::now();
  for (int i = 0; i < kEmptyClaims; ++i) {
    if (!claimer.Claim(request).empty()) throw BenchFailure("sql: a claim found a delayed message");
  }
  const double empty_ms = Seconds(Clock::now() - empty_start) * 1e3 / kEmptyClaims;
  VerifyDatabase(cfg, n, cfg.delayed);
  fmt::print("sql     batch {}, {} delayed: {} rounds, {:.0f} msg/s; claim {:.3f} ms/round ({:.1f} "
             "us/msg), complete {:.3f} ms/round ({:.1f} us/msg); empty claim {:.3f} ms\n",
             cfg.batch_size, cfg.delayed, rounds, static_cast<double>(n) / total,
             claim_s * 1e3 / rounds, claim_s * 1e6 / static_cast<double>(n),
             complete_s * 1e3 / rounds, complete_s * 1e6 / static_cast<double>(n), empty_ms);
  std::fflush(stdout);
  return {{"batch_size", cfg.batch_size},
          {"delayed", cfg.delayed},
          {"rounds", rounds},
          {"msg_per_s", static_cast<double>(n) / total},
          {"claim_ms_per_round", claim_s * 1e3 / rounds},
          {"complete_ms_per_round", complete_s * 1e3 / rounds},
          {"empty_claim_ms", empty_ms}};
}

// sql without delayed messages and with cfg.delayed of them, alternating for cfg.runs runs; the
// medians and their ratios (with / without): 1.0 when delayed rows cost a claim nothing.
json Delayed(const Config& cfg) {
  if (cfg.delayed <= 0) throw BenchFailure("delayed: --delayed must be at least 1");
  const Config none = [&] {
    Config c = cfg;
    c.delayed = 0;
    return c;
  }();
  json runs = json::array();
  std::vector<double> claim[2], empty[2];
  for (int run = 1; run <= cfg.runs; ++run) {
    for (const Config* c : {&none, &cfg}) {
      const json r = Sql(*c);
      const int k = c->delayed > 0 ? 1 : 0;
      claim[k].push_back(r["claim_ms_per_round"].get<double>());
      empty[k].push_back(r["empty_claim_ms"].get<double>());
      runs.push_back(r);
    }
  }
  const double claim_ratio = Median(claim[1]) / Median(claim[0]);
  const double empty_ratio = Median(empty[1]) / Median(empty[0]);
  fmt::print("delayed median of {}: claim {:.3f} ms/round without, {:.3f} with {} delayed ({:.2f}x); "
             "empty claim {:.3f} ms without, {:.3f} with ({:.2f}x)\n",
             cfg.runs, Median(claim[0]), Median(claim[1]), cfg.delayed, claim_ratio,
             Median(empty[0]), Median(empty[1]), empty_ratio);
  return {{"delayed", cfg.delayed},
          {"runs", runs},
          {"claim_ms_per_round", {{"without", Median(claim[0])}, {"with", Median(claim[1])}}},
          {"empty_claim_ms", {{"without", Median(empty[0])}, {"with", Median(empty[1])}}},
          {"claim_ratio", claim_ratio},
          {"empty_claim_ratio", empty_ratio}};
}

// steady: one sampling interval. Counts are deltas over the interval; sizes are at its end.
struct SteadySample {
  double t_s = 0;         // end of the interval, seconds since the first publish was due
  double interval_s = 0;
  uint64_t published = 0;
  uint64_t completed = 0;
  std::vector<double> dispatch_ms;  // sorted; commit returned -> handler start, in id order
  double claims = 0, claim_exec_ms = 0, claim_blocks = 0, claim_rows = 0;
  int64_t messages_bytes = 0, messages_index_bytes = 0, queued_index_bytes = 0, events_bytes = 0;
  int64_t messages_live = 0, messages_dead = 0, events_dead = 0;
  int64_t messages_autovacuums = 0, events_autovacuums = 0;  // since the run started
  double load = 0;
};

// What the database says at one instant: the claim statement's cumulative counters in
// pg_stat_statements (zeros when the server does not preload it) and the bus tables' sizes.
struct DatabaseReading {
  double claims = 0, claim_exec_ms = 0, claim_blocks = 0, claim_rows = 0;
  int64_t messages_bytes = 0, messages_index_bytes = 0, queued_index_bytes = 0, events_bytes = 0;
  int64_t messages_live = 0, messages_dead = 0, events_dead = 0;
  int64_t messages_autovacuums = 0, events_autovacuums = 0;
};

class DatabaseProbe {
 public:
  explicit DatabaseProbe(const Config& cfg) : conn_(cogo::db::Connect(cfg.database_url, "cogo-bench-probe")) {
    try {
      pqxx::nontransaction txn(*conn_);
      txn.exec("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
      txn.exec("SELECT pg_stat_statements_reset()");
      statements_ = true;
    } catch (const std::exception& e) {
      fmt::print("claim cost off (pg_stat_statements not loaded: {})\n", e.what());
    }
  }
  [[nodiscard]] bool statements() const { return statements_; }

  DatabaseReading Read() {
    pqxx::nontransaction txn(*conn_);
    DatabaseReading r;
    if (statements_) {
      // The claim is the one statement that bumps the fencing token (bus/statements.h kClaim);
      // pg_stat_statements shows its constants as $n.
      const auto c = txn.exec1(
          "SELECT coalesce(sum(calls), 0)::float8, coalesce(sum(total_exec_time), 0), "
          "coalesce(sum(shared_blks_hit + shared_blks_read), 0)::float8, coalesce(sum(rows), 0)::float8 "
          "FROM pg_stat_statements WHERE query LIKE '%fence = m.fence + $%'");
      r.claims = c[0].as<double>();
      r.claim_exec_ms = c[1].as<double>();
      r.claim_blocks = c[2].as<double>();
      r.claim_rows = c[3].as<double>();
    }
    const auto t = txn.exec1(
        "SELECT pg_total_relation_size('agent_messages'), pg_indexes_size('agent_messages'), "
        // The queued rows' indexes: 001's, or sql/022's two.
        "(SELECT coalesce(sum(pg_relation_size(i)), 0) FROM unnest(ARRAY[to_regclass('agent_messages_queued'), "
        "to_regclass('agent_messages_queued_ready'), to_regclass('agent_messages_queued_delayed')]) AS i)::bigint, "
        "pg_total_relation_size('bus_events'), m.n_live_tup, m.n_dead_tup, e.n_dead_tup, "
        "m.autovacuum_count, e.autovacuum_count "
        "FROM pg_stat_user_tables m, pg_stat_user_tables e "
        "WHERE m.relid = 'agent_messages'::regclass AND e.relid = 'bus_events'::regclass");
    r.messages_bytes = t[0].as<int64_t>();
    r.messages_index_bytes = t[1].as<int64_t>();
    r.queued_index_bytes = t[2].as<int64_t>();
    r.events_bytes = t[3].as<int64_t>();
    r.messages_live = t[4].as<int64_t>();
    r.messages_dead = t[5].as<int64_t>();
    r.events_dead = t[6].as<int64_t>();
    r.messages_autovacuums = t[7].as<int64_t>();
    r.events_autovacuums = t[8].as<int64_t>();
    return r;
  }

 private:
  std::unique_ptr<pqxx::connection> conn_;
  bool statements_ = false;
};

constexpr const char* kSteadyCsvHeader =
    "t_s,published_per_s,completed_per_s,dispatch_p50_ms,dispatch_p99_ms,dispatch_max_ms,"
    "claims_per_s,claim_mean_ms,claim_blocks,claim_rows,messages_mb,messages_index_mb,"
    "queued_index_mb,events_mb,messages_live,messages_dead,events_dead,messages_autovacuums,"
    "events_autovacuums,loadavg_1m";

std::string SteadyCsvRow(const SteadySample& s) {
  const double per_claim = s.claims > 0 ? 1 / s.claims : 0;
  constexpr double kMb = 1024.0 * 1024.0;
  return fmt::format("{:.0f},{:.1f},{:.1f},{:.3f},{:.3f},{:.3f},{:.1f},{:.4f},{:.1f},{:.2f},{:.1f},{:.1f},"
                     "{:.1f},{:.1f},{},{},{},{},{},{:.2f}",
                     s.t_s, static_cast<double>(s.published) / s.interval_s,
                     static_cast<double>(s.completed) / s.interval_s, Percentile(s.dispatch_ms, 50),
                     Percentile(s.dispatch_ms, 99), s.dispatch_ms.empty() ? 0 : s.dispatch_ms.back(),
                     s.claims / s.interval_s, s.claim_exec_ms * per_claim, s.claim_blocks * per_claim,
                     s.claim_rows * per_claim, static_cast<double>(s.messages_bytes) / kMb,
                     static_cast<double>(s.messages_index_bytes) / kMb,
                     static_cast<double>(s.queued_index_bytes) / kMb,
                     static_cast<double>(s.events_bytes) / kMb, s.messages_live, s.messages_dead,
                     s.events_dead, s.messages_autovacuums, s.events_autovacuums, s.load);
}

// One window of samples summed: rates over its time, the dispatch percentiles over all its
// messages, the claim cost over all its claims, and the largest sizes it saw.
json SteadyWindow(const std::vector<SteadySample>& samples, double from_s, double to_s) {
  double seconds = 0, published = 0, completed = 0, claims = 0, claim_ms = 0, blocks = 0, load = 0;
  int64_t messages_bytes = 0, index_bytes = 0, events_bytes = 0;
  int n = 0;
  std::vector<double> dispatch;
  for (const auto& s : samples) {
    if (s.t_s <= from_s || s.t_s > to_s) continue;
    ++n;
    seconds += s.interval_s;
    published += static_cast<double>(s.published);
    completed += static_cast<double>(s.completed);
    claims += s.claims;
    claim_ms += s.claim_exec_ms;
    blocks += s.claim_blocks;
    load += s.load;
    messages_bytes = std::max(messages_bytes, s.messages_bytes);
    index_bytes = std::max(index_bytes, s.messages_index_bytes);
    events_bytes = std::max(events_bytes, s.events_bytes);
    dispatch.insert(dispatch.end(), s.dispatch_ms.begin(), s.dispatch_ms.end());
  }
  std::sort(dispatch.begin(), dispatch.end());
  return {{"from_s", from_s},
          {"to_s", to_s},
          {"samples", n},
          {"published_per_s", seconds > 0 ? published / seconds : 0},
          {"completed_per_s", seconds > 0 ? completed / seconds : 0},
          {"dispatch_p50_ms", Percentile(dispatch, 50)},
          {"dispatch_p99_ms", Percentile(dispatch, 99)},
          {"claim_mean_ms", claims > 0 ? claim_ms / claims : 0},
          {"claim_blocks", claims > 0 ? blocks / claims : 0},
          {"max_messages_mb", static_cast<double>(messages_bytes) / (1024.0 * 1024.0)},
          {"max_messages_index_mb", static_cast<double>(index_bytes) / (1024.0 * 1024.0)},
          {"max_events_mb", static_cast<double>(events_bytes) / (1024.0 * 1024.0)},
          {"mean_loadavg_1m", n > 0 ? load / n : 0}};
}

// The first and the last `window_s` of the run side by side, as last / first ratios.
json CompareWindows(const std::vector<SteadySample>& samples, double duration_s, double window_s) {
  const json first = SteadyWindow(samples, 0, window_s);
  const json last = SteadyWindow(samples, duration_s - window_s, duration_s + 1e9);
  json ratios;
  for (const auto& [key, value] : first.items()) {
    if (key == "from_s" || key == "to_s" || key == "samples") continue;
    const double a = value.get<double>(), b = last[key].get<double>();
    ratios[key] = a > 0 ? b / a : 0;
  }
  return {{"first", first}, {"last", last}, {"last_over_first", ratios}};
}

// A constant `rate` for `duration_s` from `producers` connections (slot k is due at
// start + k / rate; a producer that falls behind publishes without sleeping, and slots still
// unpublished at the end are dropped, so a starved publisher shows as published/s < rate rather
// than as a run that overruns), sampled every `sample_s`. The retention and reclaimer daemons are the caller's (bench/run-soak.sh): this
// only publishes, handles and watches. Exactly-once: every id handled once, worker stats clean,
// no row left undone and no event but `completed` (retention may have pruned both meanwhile).
json Steady(const Config& cfg) {
  Reset(cfg);
  const int64_t n = static_cast<int64_t>(cfg.rate) * cfg.duration_s;
  CallLog log(static_cast<size_t>(n));
  std::vector<std::atomic<int64_t>> commit_ns(static_cast<size_t>(n) + 1);
  DatabaseProbe probe(cfg);
  Fleet fleet(FleetOf(cfg, true));
  fleet.Add(kService, kRole, cogo::bench::Recording(log));
  fleet.Start();  // returns with the workers idle, waiting for work

  std::ofstream csv;
  if (!cfg.csv_path.empty()) {
    csv.open(cfg.csv_path);
    if (!csv) throw BenchFailure("cannot write " + cfg.csv_path);
    csv << kSteadyCsvHeader << '\n';
  }
  fmt::print("steady: {} msg/s for {} s from {} producers, sampled every {} s  [{}]\n{}\n", cfg.rate,
             cfg.duration_s, cfg.producers, cfg.sample_s, ConfigText(cfg), kSteadyCsvHeader);
  std::fflush(stdout);

  std::atomic<uint64_t> published{0};
  std::vector<std::string> errors(static_cast<size_t>(cfg.producers));
  const auto start = Clock::now() + 200ms;  // every producer connected by then
  const auto end = start + std::chrono::seconds(cfg.duration_s);
  const auto slot = [&](int64_t k) {
    return start + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(static_cast<double>(k) / cfg.rate));
  };
  std::vector<std::jthread> producers;
  for (int p = 0; p < cfg.producers; ++p) {
    producers.emplace_back([&, p] {
      try {
        auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench-producer");
        cogo::bus::Bus bus(*conn);
        for (int64_t k = p; k < n && Clock::now() < end; k += cfg.producers) {
          std::this_thread::sleep_until(slot(k));
          const auto id = bus.Publish(Request(k)).id;
          const int64_t t = NowNs();
          if (id < 1 || id > n) throw BenchFailure(fmt::format("message {} got id {}", k, id));
          commit_ns[static_cast<size_t>(id)] = t;
          published.fetch_add(1);
        }
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(p)] = e.what();
      }
    });
  }
  const auto check_producers = [&] {
    for (const auto& e : errors) {
      if (!e.empty()) throw BenchFailure("producer failed: " + e);
    }
  };

  std::vector<SteadySample> samples;
  DatabaseReading before = probe.Read();
  const DatabaseReading at_start = before;
  uint64_t published_before = 0, completed_before = 0;
  int64_t next_id = 1;  // the dispatch latencies of ids below it are in a sample
  auto interval_start = start;
  for (auto tick = start + std::chrono::seconds(cfg.sample_s); interval_start < end;
       tick += std::chrono::seconds(cfg.sample_s)) {
    tick = std::min(tick, end);
    while (Clock::now() < tick) {
      std::this_thread::sleep_for(std::min<Clock::duration>(tick - Clock::now(), 1s));
      check_producers();
      (void)fleet.Stats().completed;  // a worker that stopped fails the run now, not an hour later
    }
    if (tick == end) {  // the last interval ends when its messages are handled
      producers.clear();
      check_producers();
      fleet.WaitCompleted(kRole, published.load(), Clock::now() + std::chrono::seconds(cfg.timeout_s));
    }
    SteadySample s;
    const auto now = Clock::now();
    s.t_s = Seconds(tick - start);
    s.interval_s = Seconds(now - interval_start);
    const uint64_t pub = published.load(), done = fleet.Stats().completed;
    s.published = pub - published_before;
    s.completed = done - completed_before;
    published_before = pub;
    completed_before = done;
    for (; next_id <= n; ++next_id) {
      const int64_t committed = commit_ns[static_cast<size_t>(next_id)].load();
      const int64_t started = log.start_ns(next_id);
      if (committed == 0 || started == 0) break;
      s.dispatch_ms.push_back(static_cast<double>(started - committed) / 1e6);
    }
    std::sort(s.dispatch_ms.begin(), s.dispatch_ms.end());
    const DatabaseReading r = probe.Read();
    s.claims = r.claims - before.claims;
    s.claim_exec_ms = r.claim_exec_ms - before.claim_exec_ms;
    s.claim_blocks = r.claim_blocks - before.claim_blocks;
    s.claim_rows = r.claim_rows - before.claim_rows;
    s.messages_bytes = r.messages_bytes;
    s.messages_index_bytes = r.messages_index_bytes;
    s.queued_index_bytes = r.queued_index_bytes;
    s.events_bytes = r.events_bytes;
    s.messages_live = r.messages_live;
    s.messages_dead = r.messages_dead;
    s.events_dead = r.events_dead;
    s.messages_autovacuums = r.messages_autovacuums - at_start.messages_autovacuums;
    s.events_autovacuums = r.events_autovacuums - at_start.events_autovacuums;
    s.load = LoadAverage();
    before = r;
    interval_start = now;
    const std::string row = SteadyCsvRow(s);
    fmt::print("{}\n", row);
    std::fflush(stdout);
    if (csv.is_open()) csv << row << '\n' << std::flush;
    samples.push_back(std::move(s));
  }

  const uint64_t total = published.load();
  DrainAndCheck(fleet, total);
  CheckCalls(log, total);
  {
    auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench");
    pqxx::nontransaction txn(*conn);
    const auto left = txn.exec1(
        "SELECT (SELECT count(*) FROM agent_messages WHERE status <> 'done'), "
        "(SELECT count(*) FROM bus_events WHERE event <> 'completed')");
    if (left[0].as<int64_t>() != 0 || left[1].as<int64_t>() != 0) {
      throw BenchFailure(fmt::format("database check failed: {} messages not done, {} events other "
                                     "than completed",
                                     left[0].as<int64_t>(), left[1].as<int64_t>()));
    }
  }
  const double window = std::min<double>(cfg.window_s, cfg.duration_s / 2.0);
  json out = CompareWindows(samples, cfg.duration_s, window);
  out["messages"] = total;
  out["messages_scheduled"] = n;
  out["rate_per_s"] = cfg.rate;
  out["duration_s"] = cfg.duration_s;
  out["claim_cost_measured"] = probe.statements();
  out["exactly_once"] = true;
  const auto& f = out["first"];
  const auto& l = out["last"];
  const auto& q = out["last_over_first"];
  fmt::print("\nsteady: {} of {} msgs scheduled at {}/s for {} s published, exactly-once ok; first "
             "{:.0f} s vs last {:.0f} s (last / first):\n",
             total, n, cfg.rate, cfg.duration_s, window, window);
  for (const char* key : {"published_per_s", "completed_per_s", "dispatch_p50_ms", "dispatch_p99_ms", "claim_mean_ms",
                          "claim_blocks", "max_messages_mb", "max_messages_index_mb",
                          "max_events_mb", "mean_loadavg_1m"}) {
    fmt::print("  {:<22} {:>10.3f} {:>10.3f}   {:.2f}\n", key, f[key].get<double>(),
               l[key].get<double>(), q[key].get<double>());
  }
  std::fflush(stdout);
  return out;
}

std::string RunRates(const json& mode) {
  std::string out;
  for (const auto& r : mode["runs"]) {
    out += fmt::format("{}{:.0f}", out.empty() ? "" : ", ", r["msg_per_s"].get<double>());
  }
  return out;
}

void PrintSummary(const json& results) {
  if (!results.contains("drain") && !results.contains("e2e") && !results.contains("latency")) return;
  fmt::print("\n{:<16} {:<40} {}\n", "mode", "configuration", "result");
  for (const char* name : {"drain", "e2e"}) {
    if (!results.contains(name)) continue;
    const auto& m = results[name];
    const auto& c = m["config"];
    fmt::print("{:<16} {:<40} {:.0f} msg/s median (runs: {})\n", name,
               fmt::format("workers={} concurrency={} batch={}", c["workers"].get<int>(),
                           c["concurrency"].get<int>(), c["batch_size"].get<int>()),
               m["median_msg_per_s"].get<double>(), RunRates(m));
  }
  if (results.contains("latency")) {
    const auto& c = results["latency"]["config"];
    for (const char* name : {"notify", "poll"}) {
      const auto& l = results["latency"][name];
      fmt::print("{:<16} {:<40} p50 {:.2f} / p90 {:.2f} / p99 {:.2f} / max {:.2f} ms\n",
                 fmt::format("latency {}", name),
                 fmt::format("workers={} concurrency={} poll={}ms", c["workers"].get<int>(),
                             c["concurrency"].get<int>(), l["poll_ms"].get<int>()),
                 l["p50_ms"].get<double>(), l["p90_ms"].get<double>(), l["p99_ms"].get<double>(),
                 l["max_ms"].get<double>());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cogo-bench: the bus benchmark (drain, e2e, latency), exactly-once checked"};
  app.fallthrough();
  app.require_subcommand(1);
  Config cfg;
  cogo::bench::AddDatabaseOption(app, cfg.database_url);
  app.add_option("--messages", cfg.messages, "messages per run (drain, e2e, sql)")
      ->check(CLI::Range(1, 10'000'000));
  app.add_option("--runs", cfg.runs, "runs of drain and e2e; the median is reported")
      ->check(CLI::Range(1, 100));
  app.add_option("--workers", cfg.workers, "in-process Workers")->check(CLI::Range(1, 64));
  app.add_option("--concurrency", cfg.concurrency, "handler threads per worker")
      ->check(CLI::Range(1, 256));
  app.add_option("--batch-size", cfg.batch_size, "most messages one claim takes")
      ->check(CLI::Range(1, 10000));
  app.add_option("--publish-chunk", cfg.publish_chunk, "drain: messages per PublishBatch")
      ->check(CLI::Range(1, 10000));
  app.add_option("--producers", cfg.producers, "e2e, steady: producer threads")->check(CLI::Range(1, 64));
  app.add_option("--rate", cfg.rate, "latency, steady: messages per second")->check(CLI::Range(1, 10000));
  app.add_option("--duration", cfg.duration_s, "latency, steady: seconds")->check(CLI::Range(1, 86400));
  app.add_option("--sample", cfg.sample_s, "steady: seconds per sample")->check(CLI::Range(1, 3600));
  app.add_option("--window", cfg.window_s, "steady: seconds at the start and at the end compared")
      ->check(CLI::Range(1, 86400));
  app.add_option("--csv", cfg.csv_path, "steady: write one row per sample to this file");
  app.add_flag("--random-arrivals", cfg.random_arrivals,
               "latency: exponential gaps between messages (a Poisson stream at --rate)");
  app.add_option("--poll-ms", cfg.poll_ms, "the workers' poll interval")
      ->check(CLI::Range(1, 60000));
  app.add_option("--timeout", cfg.timeout_s, "seconds before a run fails")
      ->check(CLI::Range(1, 86400));
  app.add_option("--json", cfg.json_path, "write the results to this file");
  app.add_option("--delayed", cfg.delayed, "drain, sql, delayed: messages due in an hour queued beside the run's")
      ->check(CLI::Range(0, 10'000'000));
  auto* drain = app.add_subcommand("drain", "batch-publish N, then drain with W workers");
  auto* e2e = app.add_subcommand("e2e", "8 producers, one message per transaction, concurrently");
  auto* latency = app.add_subcommand("latency", "commit -> handler start, NOTIFY and poll-only");
  auto* sql = app.add_subcommand("sql", "the claim/complete statements alone, timed");
  auto* delayed = app.add_subcommand("delayed", "sql without and with --delayed messages, in turn");
  auto* all = app.add_subcommand("all", "drain, e2e and latency");
  auto* steady = app.add_subcommand("steady", "a constant rate for a long time, sampled");
  CLI11_PARSE(app, argc, argv);
  return cogo::bench::RunBench("cogo-bench", cfg.database_url, cfg.json_path, [&](json& results) {
    if (*drain || *all) results["drain"] = Drain(cfg);
    if (*e2e || *all) results["e2e"] = EndToEnd(cfg);
    if (*latency || *all) results["latency"] = Latency(cfg);
    if (*sql) results["sql"] = Sql(cfg);
    if (*steady) results["steady"] = Steady(cfg);
    if (*delayed) results["delayed"] = Delayed(cfg);
    PrintSummary(results);
  });
}
