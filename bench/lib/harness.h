// What the in-process bus benchmarks (cogo-bench, cogo-workflow-bench) share: the database URL
// flag, the machine's description, a fresh bus between runs, a fleet of real Workers with its
// exactly-once stats check, and a main that runs the body, reports a failure and writes the
// results as JSON. Header-only; single-threaded callers (the fleet's workers own their threads).
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "cogo/db/connection.h"
#include "cogo/log/logging.h"
#include "cogo/runtime/worker.h"
#include "cogo/wake/wake_hub.h"

namespace cogo::bench {

using Clock = std::chrono::steady_clock;

// A verification miss or a run that could not finish: the bench exits 1 with its message.
struct BenchFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// --database-url, defaulting to COGO_DATABASE_URL.
inline void AddDatabaseOption(CLI::App& app, std::string& url) {
  if (const char* env = std::getenv("COGO_DATABASE_URL")) url = env;
  app.add_option("--database-url", url, "PostgreSQL URL (env COGO_DATABASE_URL)");
}

// The server's version and durability settings and the CPUs, recorded with every result.
inline nlohmann::json Machine(const std::string& database_url, const char* app) {
  auto conn = db::Connect(database_url, app);
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

// Empties `tables` (a comma-separated list; ids restart at 1) and refreshes their statistics,
// so every run starts from the same bus.
inline void ResetTables(const std::string& database_url, const char* app, const std::string& tables) {
  auto conn = db::Connect(database_url, app);
  {
    pqxx::work txn(*conn);
    txn.exec("TRUNCATE " + tables + " RESTART IDENTITY");
    txn.commit();
  }
  pqxx::nontransaction(*conn).exec("VACUUM ANALYZE " + tables);
}

struct FleetOptions {
  std::string database_url;
  int workers = 2;  // per route
  int concurrency = 4;
  int batch_size = 32;
  int poll_ms = 100;
  bool notify = true;  // one WakeHub shared by every worker; else poll only
};

// In-process Workers, `workers` per route added, optionally sharing one WakeHub.
class Fleet {
 public:
  explicit Fleet(FleetOptions options) : options_(std::move(options)), logger_(log::Get("bench")) {
    if (options_.notify) {
      wake::WakeHubOptions ho;
      ho.database_url = options_.database_url;
      hub_ = std::make_unique<wake::WakeHub>(ho, logger_);
    }
  }
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;
  ~Fleet() { Drain(); }

  void Add(const std::string& service, const std::string& role, const runtime::Handler& handler) {
    for (int i = 0; i < options_.workers; ++i) {
      runtime::WorkerOptions o;
      o.database_url = options_.database_url;
      o.service = service;
      o.role = role;
      o.concurrency = options_.concurrency;
      o.batch_size = options_.batch_size;
      o.poll = std::chrono::milliseconds(options_.poll_ms);
      o.worker_id = fmt::format("bench-{}-{}-{}", service, role, i);
      workers_.push_back({role, std::make_unique<runtime::Worker>(o, handler, hub_.get(), logger_)});
    }
  }

  // Returns once every worker is ready (runtime::Worker::WaitReady): connected, listening (with
  // a hub), claimed once and waiting for work, idle as a live system's workers would be.
  void Start() {
    if (hub_) hub_->Start();
    for (auto& w : workers_) w.worker->Start();
    for (auto& w : workers_) {
      if (!w.worker->WaitReady(std::chrono::seconds(10))) {
        throw BenchFailure("worker " + w.worker->id() + " was not ready within 10 s: " + w.worker->fatal_error());
      }
    }
  }

  // The sum of the stats of the workers on `role` (every worker when empty); throws when any
  // worker stopped on a fatal error.
  [[nodiscard]] runtime::WorkerStats Stats(const std::string& role = {}) const {
    runtime::WorkerStats total;
    for (const auto& w : workers_) {
      if (auto error = w.worker->fatal_error(); !error.empty()) {
        throw BenchFailure("worker " + w.worker->id() + " stopped: " + error);
      }
      if (!role.empty() && w.role != role) continue;
      const auto s = w.worker->stats();
      total.claimed += s.claimed;
      total.completed += s.completed;
      total.retried += s.retried;
      total.failed += s.failed;
      total.released += s.released;
      total.lease_lost += s.lease_lost;
    }
    return total;
  }

  // Blocks until the workers on `role` committed `n` completions; throws on a fatal worker
  // error or when `deadline` passes. Polls every millisecond: each look takes every worker's
  // lock, and looking every 200 us took 4% of the CPU a drain used from the workers it measures
  // (the peers' benches wait for their handlers, then poll every 5 ms). The end of a run is read
  // at most 1 ms late.
  void WaitCompleted(const std::string& role, uint64_t n, Clock::time_point deadline) const {
    while (true) {
      const uint64_t done = Stats(role).completed;
      if (done >= n) return;
      if (Clock::now() > deadline) {
        throw BenchFailure(fmt::format("timed out with {} of {} completed on {}", done, n, role));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  void Drain() {
    for (auto& w : workers_) w.worker->Drain();
    if (hub_) hub_->Stop();
  }

  // Wake-up notifications the hub received (0 without a hub).
  [[nodiscard]] uint64_t notifications() const { return hub_ ? hub_->notifications() : 0; }

 private:
  struct RouteWorker {
    std::string role;
    std::unique_ptr<runtime::Worker> worker;
  };
  FleetOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<wake::WakeHub> hub_;  // declared before the workers, which use it until drained
  std::vector<RouteWorker> workers_;
};

// Throws unless `s` is exactly `n` clean completions: each claimed once, nothing retried,
// failed, released or lost.
inline void CheckStats(const runtime::WorkerStats& s, uint64_t n, const std::string& what) {
  if (s.claimed != n || s.completed != n || s.retried + s.failed + s.released + s.lease_lost != 0) {
    throw BenchFailure(fmt::format(
        "{} worker stats: claimed {} completed {} retried {} failed {} released {} lease_lost {}; "
        "expected {} claimed and completed, nothing else",
        what, s.claimed, s.completed, s.retried, s.failed, s.released, s.lease_lost, n));
  }
}

// A no-op handler that records each call's message id in `log` (anything with Record(int64_t)).
template <typename Log>
runtime::Handler Recording(Log& log) {
  return [&log](runtime::HandlerContext& ctx) {
    log.Record(ctx.message.lease.message_id);
    return runtime::HandlerResult::Complete();
  };
}

// A bench's main after its flags are parsed: requires the database URL (exit 2), runs `body`
// with warnings-only logging and the machine's description already in `results`, prints a
// failure (exit 1) and writes `results` to `json_path` when one is given.
inline int RunBench(const char* name, const std::string& database_url, const std::string& json_path,
                    const std::function<void(nlohmann::json& results)>& body) {
  if (database_url.empty()) {
    fmt::print(stderr, "{}: --database-url or COGO_DATABASE_URL is required\n", name);
    return 2;
  }
  log::Setup(log::Format::text, "warn");
  nlohmann::json results;
  try {
    results["machine"] = Machine(database_url, name);
    const auto& m = results["machine"];
    fmt::print("{}: PostgreSQL {}, fsync={}, synchronous_commit={}, {} CPUs\n", name,
               m["server_version"].get<std::string>(), m["fsync"].get<std::string>(),
               m["synchronous_commit"].get<std::string>(), m["hardware_concurrency"].get<unsigned>());
    body(results);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: FAILED: {}\n", name, e.what());
    return 1;
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << results.dump(2) << '\n';
    if (!out) {
      fmt::print(stderr, "{}: cannot write {}\n", name, json_path);
      return 1;
    }
  }
  return 0;
}

}  // namespace cogo::bench
