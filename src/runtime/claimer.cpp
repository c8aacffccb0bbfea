// The claimer (runtime/worker.h): claims up to the worker's free capacity, queues the jobs for
// the handler threads, and follows the idle protocol (runtime/idle_protocol.h) between claims.
#include <unistd.h>

#include <algorithm>
#include <map>

#include "cogo/bus/bus.h"
#include "cogo/db/connection.h"
#include "cogo/db/reconnect.h"
#include "cogo/runtime/idle_protocol.h"
#include "runtime/worker_state.h"

namespace cogo::runtime {
namespace {

Announced ToAnnounced(bus::Bus::IdleResult result) {
  switch (result) {
    case bus::Bus::IdleResult::sentinel: return Announced::sentinel;
    case bus::Bus::IdleResult::covered: return Announced::covered;
    case bus::Bus::IdleResult::standby: return Announced::standby;
    case bus::Bus::IdleResult::busy: break;
  }
  return Announced::busy;
}

class Claimer {
 public:
  Claimer(WorkerState& state, bool notify) : s_(state), notify_(notify) {}

  void Run(std::stop_token stop) {
    // A lost claim commit only puts the message back in the queue (the worker's later
    // completion then fails its lease check), so claims need not wait for the WAL flush.
    s_.RunWithReconnect(stop, "claim", "cogo-claim:" + s_.options.service + "/" + s_.options.role,
                        std::string("SET synchronous_commit = off; ") + db::kPreferIndexScans,
                        &WorkerState::claimer_ready, [&](pqxx::connection& conn, bool reconnected) {
      bus::Bus bus(conn);
      bus.RegisterWorker({s_.id, s_.options.service, s_.options.role, s_.options.shards, Hostname(),
                          static_cast<int>(getpid())});
      if (reconnected) FindOrphans(bus);
      ReleaseOrphans(bus);
      // The idle protocol (sql/005_wake_locks.sql, runtime/idle_protocol.h): this loop claims
      // and performs what Next decides after each claim and each announcement.
      IdleState state;
      bool ready = false;
      while (true) {
        int want = 0;
        {
          std::unique_lock lock(s_.mu);
          s_.claimer_needs_capacity = true;
          s_.cv_claim.wait(lock, [&] { return !s_.claiming || s_.ClaimSize() > 0; });
          s_.claimer_needs_capacity = false;
          if (!s_.claiming) break;
          want = s_.ClaimSize();
          // A wake-up during the announcement must not be lost: it may be a leaving sentinel's.
          if (!state.just_announced) s_.wake_pending = false;
        }
        if (OrphanTryDue()) ReleaseOrphans(bus);
        const auto claim_sent = s_.clock.Now();
        const auto sent_at = std::chrono::steady_clock::now();  // the idle protocol's waits are real
        auto claimed = bus.ClaimOrNextDue({s_.id, s_.options.service, s_.options.role, s_.options.shards, want,
                                           s_.options.lease.count()});
        const auto returned_at = std::chrono::steady_clock::now();
        const size_t found = claimed.messages.size();
        if (found > 0) Enqueue(std::move(claimed.messages), claim_sent);
        auto step = Next(state, IdleEvent::Claimed(found, static_cast<size_t>(want), claimed.next_due, sent_at, returned_at),
                         notify_, s_.options.poll);
        if (step.action.leave_idle) bus.LeaveIdle(s_.options.service, s_.options.role, s_.options.shards);
        if (step.action.announce) {
          const auto announced = bus.AnnounceIdle(s_.id, s_.options.service, s_.options.role, s_.options.shards);
          step = Next(step.state, IdleEvent::Announce(ToAnnounced(announced)), notify_, s_.options.poll);
        }
        state = step.state;
        {
          std::lock_guard lock(s_.mu);
          s_.announced_idle = state.idle != IdleState::Idle::no;
        }
        if (!ready) {  // claimed once, announced if idle: from here on it waits for work
          ready = true;
          s_.SetReady(&WorkerState::claimer_ready, true);
        }
        if (step.action.wait > std::chrono::milliseconds(0) && !WaitToClaim(step.action.wait)) break;
      }
      {
        std::lock_guard lock(s_.mu);
        s_.announced_idle = false;
      }
      // Another idle worker takes over at once.
      if (LeavesOnStop(state)) bus.LeaveIdle(s_.options.service, s_.options.role, s_.options.shards);
    });
  }

 private:
  // Waits until the claimer should look again: a wake-up, a stop, or `timeout`.
  // Returns false when claiming stopped.
  bool WaitToClaim(std::chrono::milliseconds timeout) {
    std::unique_lock lock(s_.mu);
    s_.cv_claim.wait_for(lock, timeout, [&] { return !s_.claiming || s_.wake_pending; });
    return s_.claiming;
  }

  // A claim whose answer was lost with the connection may have committed: its messages are
  // leased to this worker, which never saw them. Nothing ran, so they are released like the
  // messages a drain finds unstarted: back to the queue with their attempt uncounted, and
  // without spending the bounded give-backs (bus::kAttemptsGivenBack), which are for handlers
  // whose infrastructure failed while they ran. Found after each reconnect; at most `capacity`
  // are kept, each tried at most kOrphanReleaseTries times, paced like reconnects. What is
  // beyond either is logged and left to the reclaimer: nobody renews those leases, so they
  // expire and the reclaimer requeues them. A release that keeps failing can then neither keep
  // the claimer from claiming nor be tried forever.
  void FindOrphans(bus::Bus& bus) {
    std::map<ClaimKey, Orphan> found;
    size_t beyond = 0;
    for (const bus::Lease& lease : bus.LeasesOf(s_.id)) {
      const ClaimKey key = KeyOf(lease);
      {
        std::lock_guard lock(s_.mu);
        if (s_.in_flight.count(key) != 0) continue;  // a claim this worker saw
      }
      if (found.size() >= static_cast<size_t>(s_.capacity)) {
        ++beyond;
        continue;
      }
      const auto known = orphans_.find(key);  // keeps its tries: one given up stays given up
      found.emplace(key, known != orphans_.end() ? known->second : Orphan{lease, 0});
    }
    orphans_ = std::move(found);  // forgets those whose lease is gone
    if (beyond > 0) {
      s_.logger->warn("{} more messages are leased to this worker by claims whose answer was lost; "
                      "left to the reclaimer (their leases expire)", beyond);
    }
  }

  [[nodiscard]] bool OrphanTryDue() const {
    return orphans_left_ && std::chrono::steady_clock::now() >= next_orphan_try_;
  }

  // One try for each orphan not given up. A lost connection propagates (the reconnect finds
  // them again); any other failure waits for the next try.
  void ReleaseOrphans(bus::Bus& bus) {
    orphans_left_ = false;
    for (auto it = orphans_.begin(); it != orphans_.end();) {
      Orphan& orphan = it->second;
      if (orphan.tries >= kOrphanReleaseTries) {
        ++it;
        continue;
      }
      ++orphan.tries;
      try {
        const bool released = bus.Release(orphan.lease);
        s_.logger->warn("message {} was claimed by a claim whose answer was lost: {}", orphan.lease.message_id,
                        released ? "released unrun" : "its lease was gone");
        it = orphans_.erase(it);
        continue;
      } catch (const std::exception& e) {
        const bool last = orphan.tries >= kOrphanReleaseTries;
        s_.logger->warn("message {} was claimed by a claim whose answer was lost; release try {} of {} failed: {}{}",
                        orphan.lease.message_id, orphan.tries, kOrphanReleaseTries, e.what(),
                        last ? "; left to the reclaimer (its lease expires)" : "");
        orphans_left_ = orphans_left_ || !last;
        if (db::Classify(e) == db::FailureKind::connection_lost) throw;
      }
      ++it;
    }
    orphan_pause_ = orphans_left_ ? db::NextPause(orphan_pause_, db::ReconnectPolicy{}) : std::chrono::milliseconds(0);
    next_orphan_try_ = std::chrono::steady_clock::now() + orphan_pause_;
  }

  void Enqueue(std::vector<bus::ClaimedMessage> claimed, base::Clock::TimePoint claim_sent) {
    {
      std::lock_guard lock(s_.mu);
      for (auto& m : claimed) {
        metrics::Observe(s_.route_metrics.queue_wait_seconds,
                         m.claimed_at_epoch - m.created_at_epoch);
        auto job = std::make_shared<Job>();
        job->message = std::move(m);
        job->claim_sent = claim_sent;
        s_.in_flight[KeyOf(job->message.lease)] = job;
        s_.ready.push_back(std::move(job));
      }
      s_.stats.claimed += claimed.size();
    }
    metrics::Increment(s_.route_metrics.claimed, static_cast<double>(claimed.size()));
    // One handler per message: waking them all for a single message costs context switches
    // that a no-op handler's whole run does not.
    if (claimed.size() >= static_cast<size_t>(s_.options.concurrency)) {
      s_.cv_jobs.notify_all();
    } else {
      for (size_t i = 0; i < claimed.size(); ++i) s_.cv_jobs.notify_one();
    }
  }

  struct Orphan {
    bus::Lease lease;
    int tries = 0;
  };

  WorkerState& s_;
  const bool notify_;  // a WakeHub delivers this worker's wake-ups
  // Leases of claims whose answer was lost, by claim: they survive a reconnect.
  std::map<ClaimKey, Orphan> orphans_;
  bool orphans_left_ = false;  // some orphan still waits for a try
  std::chrono::steady_clock::time_point next_orphan_try_;
  std::chrono::milliseconds orphan_pause_{0};
};

}  // namespace

void RunClaimer(WorkerState& state, bool notify, std::stop_token stop) { Claimer(state, notify).Run(stop); }

}  // namespace cogo::runtime
