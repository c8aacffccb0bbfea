// cogo-bench: cogo's own bus benchmark. Runs in-process Workers (the real runtime: claimer,
// handler and flusher threads) with a no-op handler against a database the caller names, and
// verifies exactly-once on every run: each message's handler ran once, and the database shows
// every row done with one `completed` event carrying its claim (one audit row per attempt,
// sql/019) and no other event. Any violation exits non-zero.
//   drain    N messages batch-published first, then W workers drain them; median of R runs
//   e2e      8 producers, one message per transaction, while the workers process
//   latency  100 msg/s for 10 s to idle workers, commit -> handler start, NOTIFY and poll-only
//   sql      the claim/complete statements alone on two connections, each one timed
//   all      drain, e2e and latency in turn, with one summary table
// Every mode starts from TRUNCATE agent_messages, bus_events, bus_workers RESTART IDENTITY and
// VACUUM ANALYZE. Single-threaded main; the workers and producers own their threads.
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
#include "stats.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using namespace std::chrono_literals;
using cogo::bench::LoadAverage;
using cogo::bench::Median;
using cogo::bench::Percentile;

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
  std::string json_path;
};

struct BenchFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int64_t NowNs() {
  static const Clock::time_point origin = Clock::now();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - origin).count();
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Handler calls per message id (ids are 1..N after RESTART IDENTITY) and when each started.
// Written by handler threads, read after the workers drained.
class CallLog {
 public:
  explicit CallLog(size_t n) : calls_(n + 1), start_ns_(n + 1) {}

  void Record(int64_t id) {
    const int64_t now = NowNs();
    if (id < 1 || static_cast<size_t>(id) >= calls_.size()) {
      out_of_range_.fetch_add(1);
      return;
    }
    if (calls_[static_cast<size_t>(id)].fetch_add(1) == 0) start_ns_[static_cast<size_t>(id)] = now;
  }

  [[nodiscard]] int64_t start_ns(int64_t id) const { return start_ns_[static_cast<size_t>(id)]; }

  // Empty when every id 1..N was handled exactly once.
  [[nodiscard]] std::string Check() const {
    size_t never = 0, twice = 0;
    int64_t first_bad = 0;
    for (size_t id = 1; id < calls_.size(); ++id) {
      const int c = calls_[id].load();
      if (c == 1) continue;
      (c == 0 ? never : twice) += 1;
      if (first_bad == 0) first_bad = static_cast<int64_t>(id);
    }
    if (never == 0 && twice == 0 && out_of_range_ == 0) return {};
    return fmt::format("handler calls: {} ids never handled, {} handled more than once, {} calls "
                       "for unknown ids (first bad id {})",
                       never, twice, out_of_range_.load(), first_bad);
  }

 private:
  std::vector<std::atomic<uint8_t>> calls_;
  std::vector<int64_t> start_ns_;  // each slot written once, by the thread of the first call
  std::atomic<uint64_t> out_of_range_{0};
};

cogo::bus::PublishRequest Request(int64_t n) {
  cogo::bus::PublishRequest r;
  r.service = kService;
  r.role = kRole;
  r.tenant = "bench";
  r.payload_json = "{\"n\":" + std::to_string(n) + "}";
  return r;
}

void Reset(const Config& cfg) {
  auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench");
  {
    pqxx::work txn(*conn);
    txn.exec("TRUNCATE agent_messages, bus_events, bus_workers RESTART IDENTITY");
    txn.commit();
  }
  pqxx::nontransaction(*conn).exec("VACUUM ANALYZE agent_messages, bus_events, bus_workers");
}

// The database's side of exactly-once: n rows, all done, one attempt each: one `completed` event
// that carries its claim (owner, attempt 1, fence 1, claimed_at), and nothing else.
void VerifyDatabase(const Config& cfg, int64_t n) {
  auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench");
  pqxx::work txn(*conn);
  const auto m = txn.exec1(
      "SELECT count(*), count(*) FILTER (WHERE status = 'done'), coalesce(min(id), 0), "
      "coalesce(max(id), 0) FROM agent_messages");
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

// W in-process workers on the bench route, optionally sharing one WakeHub.
class Fleet {
 public:
  Fleet(const Config& cfg, bool notify, CallLog& log) {
    auto logger = cogo::log::Get("bench");
    if (notify) {
      cogo::wake::WakeHubOptions ho;
      ho.database_url = cfg.database_url;
      hub_ = std::make_unique<cogo::wake::WakeHub>(ho, logger);
    }
    for (int i = 0; i < cfg.workers; ++i) {
      cogo::runtime::WorkerOptions o;
      o.database_url = cfg.database_url;
      o.service = kService;
      o.role = kRole;
      o.concurrency = cfg.concurrency;
      o.batch_size = cfg.batch_size;
      o.poll = std::chrono::milliseconds(cfg.poll_ms);
      o.worker_id = fmt::format("bench-{}", i);
      workers_.push_back(std::make_unique<cogo::runtime::Worker>(
          o,
          [&log](cogo::runtime::HandlerContext& ctx) {
            log.Record(ctx.message.lease.message_id);
            return cogo::runtime::HandlerResult::Complete();
          },
          hub_.get(), logger));
    }
  }

  ~Fleet() { Drain(); }

  // Wake-up notifications the hub received (0 without a hub).
  [[nodiscard]] uint64_t notifications() const { return hub_ ? hub_->notifications() : 0; }

  void Start() {
    if (hub_) {
      hub_->Start();
      // Subscriptions only help once the LISTEN is in place.
      const auto until = Clock::now() + 10s;
      while (hub_->backend_pid() == 0 && Clock::now() < until) std::this_thread::sleep_for(1ms);
    }
    for (auto& w : workers_) w->Start();
  }

  // Blocks until the workers committed `n` completions; throws on a fatal worker error or
  // when `deadline` passes.
  void WaitCompleted(uint64_t n, Clock::time_point deadline) const {
    while (true) {
      uint64_t done = 0;
      for (const auto& w : workers_) {
        done += w->stats().completed;
        if (auto error = w->fatal_error(); !error.empty()) {
          throw BenchFailure("worker " + w->id() + " stopped: " + error);
        }
      }
      if (done >= n) return;
      if (Clock::now() > deadline) {
        throw BenchFailure(fmt::format("timed out with {} of {} completed", done, n));
      }
      std::this_thread::sleep_for(200us);
    }
  }

  // Stops every worker; throws unless their stats add up to exactly `n` clean completions.
  void DrainAndCheck(uint64_t n) {
    Drain();
    cogo::runtime::WorkerStats total;
    for (const auto& w : workers_) {
      const auto s = w->stats();
      total.claimed += s.claimed;
      total.completed += s.completed;
      total.retried += s.retried;
      total.failed += s.failed;
      total.released += s.released;
      total.lease_lost += s.lease_lost;
    }
    if (total.claimed != n || total.completed != n || total.retried + total.failed +
                                                              total.released + total.lease_lost !=
                                                          0) {
      throw BenchFailure(fmt::format(
          "worker stats: claimed {} completed {} retried {} failed {} released {} lease_lost {}; "
          "expected {} claimed and completed, nothing else",
          total.claimed, total.completed, total.retried, total.failed, total.released,
          total.lease_lost, n));
    }
  }

 private:
  void Drain() {
    for (auto& w : workers_) w->Drain();
    if (hub_) hub_->Stop();
  }

  std::unique_ptr<cogo::wake::WakeHub> hub_;
  std::vector<std::unique_ptr<cogo::runtime::Worker>> workers_;
};

void CheckCalls(const CallLog& log) {
  if (auto problem = log.Check(); !problem.empty()) throw BenchFailure(problem);
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

// Batch-publishes n messages in chunks; returns the elapsed seconds.
double PublishAll(const Config& cfg, int64_t n) {
  auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench-publish");
  cogo::bus::Bus bus(*conn);
  const auto start = Clock::now();
  for (int64_t first = 1; first <= n; first += cfg.publish_chunk) {
    std::vector<cogo::bus::PublishRequest> chunk;
    for (int64_t i = first; i < std::min<int64_t>(first + cfg.publish_chunk, n + 1); ++i) {
      chunk.push_back(Request(i));
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

// The end of every throughput run: drain the workers, verify exactly-once three ways (worker
// stats, per-id handler calls, database), and describe the run. Throws BenchFailure on any miss.
json FinishRun(Fleet& fleet, const CallLog& log, const Config& cfg, int run, int64_t n,
               double seconds, double publish_s, double load) {
  fleet.DrainAndCheck(static_cast<uint64_t>(n));
  CheckCalls(log);
  VerifyDatabase(cfg, n);
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
  for (int run = 1; run <= cfg.runs; ++run) {
    Reset(cfg);
    const int64_t n = cfg.messages;
    const double publish_s = PublishAll(cfg, n);
    CallLog log(static_cast<size_t>(n));
    Fleet fleet(cfg, true, log);
    const double load = LoadAverage();
    const auto start = Clock::now();
    fleet.Start();
    fleet.WaitCompleted(static_cast<uint64_t>(n), start + std::chrono::seconds(cfg.timeout_s));
    const double seconds = Seconds(Clock::now() - start);
    const json result = FinishRun(fleet, log, cfg, run, n, seconds, publish_s, load);
    const double rate = result["msg_per_s"].get<double>();
    rates.push_back(rate);
    runs.push_back(result);
    fmt::print("drain   run {}: {} msgs in {:.3f} s = {:>8.0f} msg/s  (publish {:.0f} msg/s; "
               "exactly-once ok; load {:.1f})  [{}]\n",
               run, n, seconds, rate, static_cast<double>(n) / publish_s, load, ConfigText(cfg));
    std::fflush(stdout);
  }
  const double median = Median(rates);
  fmt::print("drain   median of {}: {:.0f} msg/s\n", cfg.runs, median);
  return {{"config", ConfigJson(cfg)}, {"runs", runs}, {"median_msg_per_s", median}};
}

json EndToEnd(const Config& cfg) {
  json runs = json::array();
  std::vector<double> rates;
  for (int run = 1; run <= cfg.runs; ++run) {
    Reset(cfg);
    const int64_t n = cfg.messages;
    CallLog log(static_cast<size_t>(n));
    Fleet fleet(cfg, true, log);
    fleet.Start();
    std::this_thread::sleep_for(300ms);  // let the workers go idle, as a live system's would

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
      fleet.WaitCompleted(static_cast<uint64_t>(n), start + std::chrono::seconds(cfg.timeout_s));
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
  Fleet fleet(cfg, notify, log);
  fleet.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(std::max(300, 2 * cfg.poll_ms)));

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
  fleet.WaitCompleted(static_cast<uint64_t>(n), Clock::now() + std::chrono::seconds(cfg.timeout_s));
  const uint64_t notifications = fleet.notifications();
  fleet.DrainAndCheck(static_cast<uint64_t>(n));
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
// commit, as the worker's claimer), another completes (synchronous), in turn, each timed.
json Sql(const Config& cfg) {
  Reset(cfg);
  const int64_t n = cfg.messages;
  PublishAll(cfg, n);
  auto claim_conn = cogo::db::Connect(cfg.database_url, "cogo-bench-claim");
  pqxx::nontransaction(*claim_conn).exec("SET synchronous_commit = off");
  auto complete_conn = cogo::db::Connect(cfg.database_url, "cogo-bench-complete");
  cogo::bus::Bus claimer(*claim_conn);
  cogo::bus::Bus completer(*complete_conn);
  double claim_s = 0, complete_s = 0;
  int64_t done = 0, rounds = 0;
  const auto start = Clock::now();
  while (true) {
    auto t0 = Clock::now();
    auto claimed = claimer.Claim({"bench-sql", kService, kRole, {0}, cfg.batch_size, 30000});
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
  VerifyDatabase(cfg, n);
  fmt::print("sql     batch {}: {} rounds, {:.0f} msg/s; claim {:.3f} ms/round ({:.1f} us/msg), "
             "complete {:.3f} ms/round ({:.1f} us/msg)\n",
             cfg.batch_size, rounds, static_cast<double>(n) / total, claim_s * 1e3 / rounds,
             claim_s * 1e6 / static_cast<double>(n), complete_s * 1e3 / rounds,
             complete_s * 1e6 / static_cast<double>(n));
  return {{"batch_size", cfg.batch_size},
          {"rounds", rounds},
          {"msg_per_s", static_cast<double>(n) / total},
          {"claim_ms_per_round", claim_s * 1e3 / rounds},
          {"complete_ms_per_round", complete_s * 1e3 / rounds}};
}

json Machine(const Config& cfg) {
  auto conn = cogo::db::Connect(cfg.database_url, "cogo-bench");
  pqxx::nontransaction txn(*conn);
  const auto row = txn.exec1(
      "SELECT current_setting('server_version'), current_setting('fsync'), "
      "current_setting('synchronous_commit'), current_setting('shared_buffers'), "
      "current_setting('wal_sync_method')");
  return {{"hardware_concurrency", std::thread::hardware_concurrency()},
          {"server_version", row[0].as<std::string>()},
          {"fsync", row[1].as<std::string>()},
          {"synchronous_commit", row[2].as<std::string>()},
          {"shared_buffers", row[3].as<std::string>()},
          {"wal_sync_method", row[4].as<std::string>()}};
}

std::string RunRates(const json& mode) {
  std::string out;
  for (const auto& r : mode["runs"]) {
    out += fmt::format("{}{:.0f}", out.empty() ? "" : ", ", r["msg_per_s"].get<double>());
  }
  return out;
}

void PrintSummary(const json& results) {
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
  if (const char* url = std::getenv("COGO_DATABASE_URL")) cfg.database_url = url;
  app.add_option("--database-url", cfg.database_url, "PostgreSQL URL (env COGO_DATABASE_URL)");
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
  app.add_option("--producers", cfg.producers, "e2e: producer threads")->check(CLI::Range(1, 64));
  app.add_option("--rate", cfg.rate, "latency: messages per second")->check(CLI::Range(1, 10000));
  app.add_option("--duration", cfg.duration_s, "latency: seconds")->check(CLI::Range(1, 3600));
  app.add_flag("--random-arrivals", cfg.random_arrivals,
               "latency: exponential gaps between messages (a Poisson stream at --rate)");
  app.add_option("--poll-ms", cfg.poll_ms, "the workers' poll interval")
      ->check(CLI::Range(1, 60000));
  app.add_option("--timeout", cfg.timeout_s, "seconds before a run fails")
      ->check(CLI::Range(1, 86400));
  app.add_option("--json", cfg.json_path, "write the results to this file");
  auto* drain = app.add_subcommand("drain", "batch-publish N, then drain with W workers");
  auto* e2e = app.add_subcommand("e2e", "8 producers, one message per transaction, concurrently");
  auto* latency = app.add_subcommand("latency", "commit -> handler start, NOTIFY and poll-only");
  auto* sql = app.add_subcommand("sql", "the claim/complete statements alone, timed");
  auto* all = app.add_subcommand("all", "drain, e2e and latency");
  CLI11_PARSE(app, argc, argv);
  if (cfg.database_url.empty()) {
    fmt::print(stderr, "cogo-bench: --database-url or COGO_DATABASE_URL is required\n");
    return 2;
  }

  cogo::log::Setup(cogo::log::Format::text, "warn");
  json results;
  try {
    results["machine"] = Machine(cfg);
    const auto& m = results["machine"];
    fmt::print("cogo-bench: PostgreSQL {}, fsync={}, synchronous_commit={}, {} CPUs\n",
               m["server_version"].get<std::string>(), m["fsync"].get<std::string>(),
               m["synchronous_commit"].get<std::string>(),
               m["hardware_concurrency"].get<unsigned>());
    if (*drain || *all) results["drain"] = Drain(cfg);
    if (*e2e || *all) results["e2e"] = EndToEnd(cfg);
    if (*latency || *all) results["latency"] = Latency(cfg);
    if (*sql) results["sql"] = Sql(cfg);
    PrintSummary(results);
  } catch (const std::exception& e) {
    fmt::print(stderr, "cogo-bench: FAILED: {}\n", e.what());
    return 1;
  }
  if (!cfg.json_path.empty()) {
    std::ofstream out(cfg.json_path);
    out << results.dump(2) << '\n';
    if (!out) {
      fmt::print(stderr, "cogo-bench: cannot write {}\n", cfg.json_path);
      return 1;
    }
  }
  return 0;
}
