// What a Worker's threads share (runtime/worker.h). The claimer (claimer.cpp) queues claimed jobs,
// handler threads (worker.cpp) run them and queue their outcomes, the flusher (flusher.cpp)
// writes the outcomes, heartbeats the leases and stops handlers past their deadline. On a route
// at a trickle, a handler that finishes while nothing else runs or waits writes its outcome
// itself, on the flusher's connection while the flusher sleeps (MayFlushHere, FlushOutcomes).
// Every mutable field is guarded by `mu`; the constant ones are set before any thread starts.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/connection>
#include <spdlog/logger.h>

#include "cogo/base/clock.h"
#include "cogo/runtime/bus_metrics.h"
#include "cogo/runtime/claim_pacing.h"
#include "cogo/runtime/guards.h"
#include "cogo/runtime/worker.h"

namespace cogo::bus {
class Bus;
}

namespace cogo::runtime {

struct Job {
  enum class State { ready, running, finished, abandoned };
  bus::ClaimedMessage message;
  std::stop_source stop;
  State state = State::ready;
  base::Clock::TimePoint claim_sent;               // the clock just before the claim was sent
  std::optional<base::Clock::TimePoint> deadline;  // set when the handler starts
};

// A claim in flight: (message id, fence). Keyed by claim, not by message: a message cancelled,
// retried and claimed again while its first handler still runs is in flight twice, and each
// claim keeps its own heartbeat.
using ClaimKey = std::pair<int64_t, int64_t>;
[[nodiscard]] inline ClaimKey KeyOf(const bus::Lease& lease) { return {lease.message_id, lease.fence}; }

struct WorkerState {
  WorkerState(WorkerOptions options, std::string id, std::shared_ptr<spdlog::logger> logger,
              metrics::BusMetrics* metrics);

  const WorkerOptions options;
  const std::string id;
  const base::Clock& clock;  // options.clock, or the real steady clock
  const std::shared_ptr<spdlog::logger> logger;
  const int capacity;  // running + waiting: concurrency + batch_size
  metrics::BusMetrics::Route route_metrics{};

  mutable std::mutex mu;
  std::condition_variable cv_claim;  // capacity freed, a wake-up, or claiming stopped
  std::condition_variable cv_jobs;   // a job is ready, or handlers stop
  std::condition_variable cv_flush;  // an outcome is queued, a deadline added, a handler's write failed, or the flusher stops
  std::condition_variable cv_connection;  // a handler gave the flusher's connection back
  std::condition_variable cv_idle;   // a handler finished (the drain waits for none running)
  mutable std::condition_variable cv_ready;  // a loop became ready or stopped, or the LISTEN came up
  std::deque<std::shared_ptr<Job>> ready;
  std::map<ClaimKey, std::shared_ptr<Job>> in_flight;
  std::vector<Outcome> outcomes;
  int running = 0;
  bool wake_pending = false;
  // The claimer waits for ClaimSize() > 0: only then does freed capacity need to wake it. Woken
  // for every handler that finished and every flush, it would wake for nothing while it waits
  // for a wake-up (one or two context switches per message, beside the flusher's).
  bool claimer_needs_capacity = false;
  bool announced_idle = false;  // the claimer's idle protocol has it announced (not busy)
  bool claiming = true;
  bool stop_handlers = false;
  bool stop_flusher = false;
  bool drained = false;
  bool deadline_added = false;
  bool claimer_ready = false;  // connected, registered, first claim made (Worker::WaitReady)
  bool flusher_ready = false;  // connected
  // The flusher's connection, while it has one, and who uses it: one thread at a time. The
  // flusher lends it to a handler while it sleeps; a handler whose write failed leaves the
  // batch and the failure to the flusher, which takes them as its own (it reconnects and writes
  // the batch again), and no handler writes until then.
  enum class FlushUser { none, flusher, handler };
  bus::Bus* flush_bus = nullptr;
  FlushUser flush_user = FlushUser::none;
  std::vector<Outcome> failed_flush;
  std::exception_ptr flush_error;
  WorkerStats stats;
  std::string fatal_error;

  // How many messages the next claim may take (mu held). Running and waiting jobs stay within
  // `capacity`; finished ones awaiting their flush may add one more batch, so the next claim goes
  // out while the last batch's outcomes commit (a commit waits for the WAL flush) instead of after.
  // A worker of slow handlers holds no more than `capacity`, as before.
  [[nodiscard]] int FreeCapacity() const {
    const int unfinished = static_cast<int>(ready.size()) + running;
    return std::min(capacity - unfinished,
                    capacity + options.batch_size - static_cast<int>(in_flight.size()));
  }

  // Whether a handler that just finished may write the outcomes itself (mu held): the route is
  // at a trickle (the claimer is announced idle: runtime/idle_protocol.h), nothing else runs or
  // waits, and the flusher's connection is free and sound. It spares the hand-off to the
  // flusher, a thread wake-up on every message's path. A busy route's outcomes are batched by
  // the flusher: written one at a time, each would cost a commit.
  [[nodiscard]] bool MayFlushHere() const {
    return announced_idle && running == 0 && ready.empty() && !outcomes.empty() && flush_bus != nullptr &&
           flush_user == FlushUser::none && !flush_error && !stop_flusher;
  }

  // Capacity was freed (mu held): wakes the claimer if it waits for some.
  void CapacityFreed() {
    if (claimer_needs_capacity) cv_claim.notify_one();
  }

  // How many messages the next claim takes (mu held; 0: wait), runtime/claim_pacing.h. Jobs in
  // flight that are neither waiting nor running have finished: their outcomes await the flush.
  [[nodiscard]] int ClaimSize() const {
    const int waiting = static_cast<int>(ready.size());
    return NextClaimSize(FreeCapacity(), waiting, static_cast<int>(in_flight.size()) - waiting - running,
                         options.batch_size);
  }

  // Runs a loop on its own connection (db::RunConnected); a failure that ends it is fatal for
  // the worker (recorded, reported through fatal_error). Both loops may run again after a
  // commit in doubt: a claim that did commit only leaves leases that the next connection
  // releases (the claimer's ReleaseOrphans); a flush that did commit finds its leases gone on
  // the retry and writes nothing. `ready_flag` (a readiness flag the body sets once it serves) is
  // cleared whenever the body ends.
  // `session_setup`: SQL sent with the connection's first statement (db::Connector).
  void RunWithReconnect(std::stop_token stop, const char* loop, const std::string& application_name,
                        const std::string& session_setup, bool WorkerState::*ready_flag,
                        const std::function<void(pqxx::connection&, bool)>& body);
  // Sets a readiness flag and wakes Worker::WaitReady.
  void SetReady(bool WorkerState::*flag, bool value);
};

[[nodiscard]] std::string Hostname();

// The claimer thread's body (claimer.cpp); `notify`: a WakeHub delivers this worker's wake-ups.
void RunClaimer(WorkerState& state, bool notify, std::stop_token stop);
// The flusher thread's body (flusher.cpp).
void RunFlusher(WorkerState& state, std::stop_token stop);
// Writes `batch` (the outcomes, their follow-ups, events and usage) on `bus`, which the calling
// thread holds (WorkerState::flush_user), and does the bookkeeping (flusher.cpp).
void FlushOutcomes(WorkerState& state, bus::Bus& bus, const std::vector<Outcome>& batch);

}  // namespace cogo::runtime
