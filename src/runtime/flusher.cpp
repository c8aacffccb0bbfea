// The flusher (runtime/worker.h): writes the handlers' outcomes in batches, heartbeats the
// leases in flight and the registry row, and stops handlers past their deadline.
#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

#include "cogo/bus/bus.h"
#include "cogo/db/connection.h"
#include "cogo/db/pipelined_transaction.h"
#include "cogo/usage/usage_log.h"
#include "runtime/worker_state.h"

namespace cogo::runtime {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Writes a batch of outcomes on a connection the calling thread holds, and does the bookkeeping.
class BatchWriter {
 public:
  explicit BatchWriter(WorkerState& state) : s_(state) {}

  // Every outcome of the batch, with its follow-ups, events and usage, in one transaction. What
  // rides along stands or falls with the attempt's end (the rows whose lease still holds are
  // locked first, or the completions fail the transaction unless they all hold), and the trail
  // reads cause before effect: domain events, then children (execute_enqueued), then the
  // outcome itself; usage is recorded for the attempts whose end was written.
  void Flush(bus::Bus& bus, const std::vector<Outcome>& batch) {
    bool rides_along = false;  // children or events: they must wait for the lease's verdict
    bool usage_rides = false;
    bool only_completions = true;
    bool keyed_children = false;
    for (const auto& o : batch) {
      rides_along = rides_along || !o.publish.empty() || !o.events.empty();
      usage_rides = usage_rides || o.usage.has_value();
      only_completions = only_completions && o.kind == Outcome::Kind::complete;
      for (const auto& child : o.publish) keyed_children = keyed_children || !child.idempotency_key.empty();
    }
    WorkerStats delta;
    if (only_completions && !rides_along && !usage_rides) {
      // Plain completions are one statement, atomic on its own: autocommit saves BEGIN and COMMIT.
      std::vector<bus::Completion> completions;
      completions.reserve(batch.size());
      for (const auto& o : batch) completions.push_back(o.completion);
      for (const bool completed : bus.CompleteBatch(completions)) ++(completed ? delta.completed : delta.lease_lost);
    } else {
      // A child with an idempotency key, inserted before its parent's row is locked, could wait
      // on a newer attempt that holds the row and inserts the same key: a deadlock. Those lock first.
      WriteInOneTransaction(bus, batch, only_completions && !keyed_children, delta);
    }
    if (delta.lease_lost > 0) {
      s_.logger->warn("{} outcomes arrived after their lease was lost (reclaimed or cancelled)",
                    delta.lease_lost);
    }
    metrics::Increment(s_.route_metrics.completed, static_cast<double>(delta.completed));
    metrics::Increment(s_.route_metrics.retried, static_cast<double>(delta.retried));
    metrics::Increment(s_.route_metrics.failed, static_cast<double>(delta.failed));
    metrics::Increment(s_.route_metrics.released, static_cast<double>(delta.released));
    metrics::Increment(s_.route_metrics.lease_lost, static_cast<double>(delta.lease_lost));
    {
      std::lock_guard lock(s_.mu);
      for (const auto& o : batch) {
        s_.in_flight.erase(KeyOf(o.lease()));
      }
      s_.stats.completed += delta.completed;
      s_.stats.retried += delta.retried;
      s_.stats.failed += delta.failed;
      s_.stats.released += delta.released;
      s_.stats.lease_lost += delta.lease_lost;
      ++s_.stats.flushes;
      s_.CapacityFreed();
    }
  }

 private:
  // The statements of a flush, queued for the outcomes whose lease is `held`, and what each
  // result belongs to.
  struct Queued {
    std::vector<size_t> releases;
    std::optional<size_t> complete;
    bool complete_all = false;  // the all-or-nothing completion: it returned, so every one was written
    std::vector<const Outcome*> completed;  // in the order of the completion statement's input
    std::vector<std::pair<const Outcome*, size_t>> failures;
  };

  // `complete_all`: the completions fail the transaction unless every lease holds (the batch
  // holds only completions, and no lock was queued before).
  static Queued QueueWrites(bus::Bus& bus, db::PipelinedTransaction& t, const std::vector<Outcome>& batch,
                            const std::vector<bool>& held, bool complete_all) {
    Queued q;
    q.complete_all = complete_all;
    std::vector<bus::PublishRequest> follow_ups;
    std::vector<bus::AuditEvent> events;
    std::vector<bus::Completion> completions;
    for (size_t i = 0; i < batch.size(); ++i) {
      const Outcome& o = batch[i];
      if (!held[i]) continue;
      follow_ups.insert(follow_ups.end(), o.publish.begin(), o.publish.end());
      events.insert(events.end(), o.events.begin(), o.events.end());
      if (o.kind == Outcome::Kind::complete) {
        completions.push_back(o.completion);
        q.completed.push_back(&o);
      }
      if (o.kind == Outcome::Kind::release) q.releases.push_back(bus.QueueRelease(t, o.lease()));
    }
    if (!events.empty()) (void)bus.QueueAddEvents(t, events);
    // The bus takes at most max_batch messages per statement; the outcomes of one flush may
    // carry more together (or one handler's alone): more statements, the same transaction.
    const size_t chunk = bus.limits().max_batch;
    for (size_t i = 0; i < follow_ups.size(); i += chunk) {
      const auto first = follow_ups.begin() + static_cast<std::ptrdiff_t>(i);
      (void)bus.QueuePublish(t, {first, first + static_cast<std::ptrdiff_t>(std::min(chunk, follow_ups.size() - i))});
    }
    if (!completions.empty()) {
      q.complete = complete_all ? bus.QueueCompleteAll(t, completions) : bus.QueueComplete(t, completions);
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (held[i] && batch[i].kind == Outcome::Kind::fail) {
        q.failures.emplace_back(&batch[i], bus.QueueFail(t, batch[i].failure));
      }
    }
    return q;
  }

  // What the results of a flush's statements say, as counts; logs each failure.
  WorkerStats Count(const Queued& q, const std::vector<pqxx::result>& results, const std::vector<bool>& held) {
    WorkerStats counted;
    counted.lease_lost = static_cast<uint64_t>(std::count(held.begin(), held.end(), false));  // reclaimed or cancelled meanwhile
    for (size_t i : q.releases) ++(results.at(i).empty() ? counted.lease_lost : counted.released);
    if (q.complete && q.complete_all) {
      counted.completed += q.completed.size();
    } else if (q.complete) {
      std::vector<bus::Lease> completed_leases;
      for (const Outcome* o : q.completed) completed_leases.push_back(o->lease());
      for (const bool completed : bus::Bus::ReadHeld(results.at(*q.complete), completed_leases)) {
        ++(completed ? counted.completed : counted.lease_lost);
      }
    }
    for (const auto& [o, position] : q.failures) {
      const auto result = bus::Bus::ReadFail(results.at(position));
      switch (result) {
        case bus::FailOutcome::requeued: ++counted.retried; break;
        case bus::FailOutcome::dead_lettered:
        case bus::FailOutcome::failed: ++counted.failed; break;
        case bus::FailOutcome::lease_lost: ++counted.lease_lost; break;
      }
      s_.logger->warn("message {} attempt {} failed ({}): {}", o->failure.lease.message_id,
                      o->failure.lease.attempt, bus::FailOutcomeName(result), o->failure.error);
    }
    return counted;
  }

  // The transaction in as few round trips as its outcomes allow (db::PipelinedTransaction),
  // instead of one per statement. Usually one: every lease still holds, so BEGIN, the lock that
  // fails unless they all do (sql/026), every write, the usage of every attempt and COMMIT go in
  // one message; `without_lock` (a batch of completions) starts with no lock, since its
  // completion statement fails the same way (Bus::QueueCompleteAll) and what it carries stands
  // or falls with it. When a lease is gone, that message rolls back, and the batch takes two:
  // the lock that says which leases hold (and keeps them held to the end), then the writes for
  // those, their usage and COMMIT.
  void WriteInOneTransaction(bus::Bus& bus, const std::vector<Outcome>& batch, bool without_lock,
                             WorkerStats& delta) {
    const std::vector<bus::Lease> leases = LeasesOf(batch);
    {
      db::PipelinedTransaction t(bus.connection());
      try {
        if (!without_lock) (void)bus.QueueLockAllLeases(t, leases);
        delta = WriteHeld(bus, t, batch, std::vector<bool>(batch.size(), true), without_lock);
        return;
      } catch (const std::exception& e) {
        if (!bus::IsLeaseLost(e)) throw;
      }
      t.Rollback();  // a connection that broke meanwhile fails here, not in the next message
    }
    db::PipelinedTransaction t(bus.connection());
    const size_t lock = bus.QueueLockLeases(t, leases);
    const std::vector<bool> held = bus::Bus::ReadHeld(t.Send().at(lock), leases);
    delta = WriteHeld(bus, t, batch, held, false);
  }

  // Queues the writes of the outcomes whose lease is `held` (locked by this transaction: every
  // one of their statements finds it holding; with `complete_all`, every outcome, a completion
  // whose statement fails the transaction unless they all hold) with their usage, commits, and
  // counts.
  WorkerStats WriteHeld(bus::Bus& bus, db::PipelinedTransaction& t, const std::vector<Outcome>& batch,
                        const std::vector<bool>& held, bool complete_all) {
    const Queued q = QueueWrites(bus, t, batch, held, complete_all);
    std::vector<usage::UsageRecord> usage;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (held[i] && batch[i].usage) usage.push_back(*batch[i].usage);
    }
    usage::Queue(t, usage);
    return Count(q, t.Commit(), held);
  }

  static std::vector<bus::Lease> LeasesOf(const std::vector<Outcome>& batch) {
    std::vector<bus::Lease> leases;
    leases.reserve(batch.size());
    for (const auto& o : batch) leases.push_back(o.lease());
    return leases;
  }

  WorkerState& s_;
};

// The flusher's connection, lent to a handler while the flusher sleeps (WorkerState::flush_bus):
// published held by the flusher, and withdrawn when the connection's loop ends, once a handler
// writing on it has finished.
class LentConnection {
 public:
  LentConnection(WorkerState& state, bus::Bus& bus) : s_(state) {
    std::lock_guard lock(s_.mu);
    s_.flush_bus = &bus;
    s_.flush_user = WorkerState::FlushUser::flusher;
  }
  ~LentConnection() {
    std::unique_lock lock(s_.mu);
    s_.cv_connection.wait(lock, [&] { return s_.flush_user != WorkerState::FlushUser::handler; });
    s_.flush_bus = nullptr;
    s_.flush_user = WorkerState::FlushUser::none;
  }
  LentConnection(const LentConnection&) = delete;
  LentConnection& operator=(const LentConnection&) = delete;

 private:
  WorkerState& s_;
};

class Flusher {
 public:
  explicit Flusher(WorkerState& state) : s_(state) {}

  void Run(std::stop_token stop) {
    const std::string session_setup =
        s_.options.durable_outcomes ? db::kPreferIndexScans
                                    : std::string("SET synchronous_commit = off; ") + db::kPreferIndexScans;
    s_.RunWithReconnect(stop, "flush", "cogo-flush:" + s_.options.service + "/" + s_.options.role, session_setup,
                        &WorkerState::flusher_ready, [&](pqxx::connection& conn, bool reconnected) {
      bus::Bus bus(conn);
      const LentConnection lent(s_, bus);
      std::vector<Outcome>& batch = unflushed_;  // survives a reconnect: it is retried first
      TakeFailedFlush(batch);  // a handler's write that failed as the last connection ended
      s_.SetReady(&WorkerState::flusher_ready, true);
      if (reconnected) s_.logger->info("flush loop retries {} unflushed outcomes", batch.size());
      auto next_heartbeat = SteadyClock::now() + s_.options.heartbeat;
      while (true) {  // holds the connection here
        bool finish = false;
        if (batch.empty()) {  // a batch left from a failed attempt is retried first
          const auto wake_at = std::min(next_heartbeat, EnforceDeadlines());
          std::unique_lock lock(s_.mu);
          s_.flush_user = WorkerState::FlushUser::none;  // asleep: lent to a handler that finishes alone
          s_.cv_flush.wait_until(lock, wake_at, [&] {
            return s_.stop_flusher || !s_.outcomes.empty() || s_.deadline_added || s_.flush_error;
          });
          s_.cv_connection.wait(lock, [&] { return s_.flush_user != WorkerState::FlushUser::handler; });
          s_.flush_user = WorkerState::FlushUser::flusher;
          if (s_.flush_error) {
            // A handler's write failed: the flusher takes the batch and the failure as its own, so
            // the connection is replaced and the batch written again as after its own failure.
            batch = std::move(s_.failed_flush);
            s_.failed_flush.clear();
            std::rethrow_exception(std::exchange(s_.flush_error, nullptr));
          }
          s_.deadline_added = false;
          batch.swap(s_.outcomes);
          finish = s_.stop_flusher && batch.empty();
        }
        if (finish) {
          bus.UnregisterWorker(s_.id);
          return;
        }
        if (!batch.empty()) {
          FlushOutcomes(s_, bus, batch);
          batch.clear();
        }
        if (SteadyClock::now() >= next_heartbeat) {
          Heartbeat(bus);
          next_heartbeat = SteadyClock::now() + s_.options.heartbeat;
        }
      }
    });
  }

 private:
  // Requests the stop of handlers whose deadline passed; returns when the next one is due.
  SteadyClock::time_point EnforceDeadlines() {
    const auto now = s_.clock.Now();
    const auto steady_now = SteadyClock::now();  // the flusher waits on the real clock
    auto next = SteadyClock::time_point::max();
    std::lock_guard lock(s_.mu);
    for (auto& [key, job] : s_.in_flight) {
      if (job->state != Job::State::running || !job->deadline || job->stop.stop_requested()) continue;
      if (*job->deadline <= now) {
        s_.logger->warn("message {} ran past its deadline; stopping its handler", key.first);
        job->stop.request_stop();
      } else {
        next = std::min(next, steady_now + (*job->deadline - now));
      }
    }
    return next;
  }

  void Heartbeat(bus::Bus& bus) {
    std::vector<bus::Lease> leases;
    {
      std::lock_guard lock(s_.mu);
      leases.reserve(s_.in_flight.size());
      for (const auto& [key, job] : s_.in_flight) leases.push_back(job->message.lease);
    }
    bus.TouchWorker(s_.id);
    if (leases.empty()) return;
    const std::vector<bool> held = bus.Heartbeat(leases, s_.options.lease.count());
    std::lock_guard lock(s_.mu);
    for (size_t i = 0; i < leases.size(); ++i) {
      if (held[i]) continue;
      auto it = s_.in_flight.find(KeyOf(leases[i]));
      if (it == s_.in_flight.end()) continue;
      // Reclaimed, cancelled or claimed again under us: tell the handler to stop; its outcome
      // will be refused.
      s_.logger->warn("lost the lease of message {} (fence {}); stopping its handler",
                    leases[i].message_id, leases[i].fence);
      it->second->stop.request_stop();
    }
  }

  void TakeFailedFlush(std::vector<Outcome>& batch) {
    std::lock_guard lock(s_.mu);
    if (!s_.flush_error) return;
    batch.insert(batch.end(), std::make_move_iterator(s_.failed_flush.begin()),
                 std::make_move_iterator(s_.failed_flush.end()));
    s_.failed_flush.clear();
    s_.flush_error = nullptr;
  }

  WorkerState& s_;
  std::vector<Outcome> unflushed_;  // the batch in progress: survives a reconnect, retried first
};

}  // namespace

void RunFlusher(WorkerState& state, std::stop_token stop) { Flusher(state).Run(stop); }

void FlushOutcomes(WorkerState& state, bus::Bus& bus, const std::vector<Outcome>& batch) {
  BatchWriter(state).Flush(bus, batch);
}

}  // namespace cogo::runtime
