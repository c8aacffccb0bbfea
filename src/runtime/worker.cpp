#include "cogo/runtime/worker.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "cogo/bus/bus.h"
#include "cogo/bus/keys.h"
#include "cogo/db/reconnect.h"
#include "cogo/metrics/bus_metrics.h"
#include "cogo/policy/admit.h"
#include "cogo/runtime/claim_pacing.h"
#include "cogo/wake/wake_hub.h"

namespace cogo::runtime {

HandlerResult HandlerResult::Complete(std::string result_json, std::string snippet,
                                      std::string url) {
  HandlerResult r;
  r.kind = Kind::complete;
  r.result_json = std::move(result_json);
  r.snippet = std::move(snippet);
  r.url = std::move(url);
  return r;
}

HandlerResult HandlerResult::Retry(std::string error,
                                   std::optional<std::chrono::milliseconds> delay) {
  HandlerResult r;
  r.kind = Kind::retry;
  r.error = std::move(error);
  r.retry_delay = delay;
  return r;
}

HandlerResult HandlerResult::GiveBack(std::string error,
                                     std::optional<std::chrono::milliseconds> delay) {
  HandlerResult r = Retry(std::move(error), delay);
  r.kind = Kind::give_back;
  return r;
}

HandlerResult HandlerResult::Fail(std::string error) {
  HandlerResult r;
  r.kind = Kind::fail;
  r.error = std::move(error);
  return r;
}

HandlerResult HandlerResult::Committed() {
  HandlerResult r;
  r.kind = Kind::committed;
  return r;
}

UsageGuard::UsageGuard(std::optional<policy::Budget> budget, std::stop_source stop)
    : stop_(std::move(stop)) {
  if (budget) meter_.emplace(*budget);
}

policy::MeterVerdict UsageGuard::Report(const policy::Usage& usage) {
  std::lock_guard lock(mu_);
  reported_ = true;
  if (!meter_) {
    unmetered_ += usage;
    return policy::MeterVerdict::within;
  }
  const auto verdict = meter_->Add(usage);
  if (verdict != policy::MeterVerdict::within) stop_.request_stop();
  return verdict;
}

policy::Usage UsageGuard::total() const {
  std::lock_guard lock(mu_);
  return meter_ ? meter_->total() : unmetered_;
}

policy::MeterVerdict UsageGuard::verdict() const {
  std::lock_guard lock(mu_);
  return meter_ ? meter_->verdict() : policy::MeterVerdict::within;
}

bool UsageGuard::reported() const {
  std::lock_guard lock(mu_);
  return reported_;
}

namespace {

using Clock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

policy::TimePoint FromEpochSeconds(double seconds) {
  return policy::TimePoint(std::chrono::duration_cast<SystemClock::duration>(
      std::chrono::duration<double>(seconds)));
}

// A guard's verdict as a permanent failure with a machine-readable reason first.
HandlerResult Violation(const std::string& reason, const std::string& detail) {
  HandlerResult r = HandlerResult::Fail(reason + ": " + detail);
  r.events.push_back({0, "policy_violation", nlohmann::json{{"reason", reason}, {"detail", detail}}.dump()});
  return r;
}

// How long a worker whose shards another sentinel covers waits before it looks again, and the
// longest pause of one that found producers mid-commit (see ClaimLoop).
constexpr std::chrono::milliseconds kCoveredLook{250};
constexpr std::chrono::milliseconds kBusyLook{16};

// The failure reason of a handler still running when the drain grace ran out.
constexpr const char* kDrainTimeout = "drain_timeout";

// A claim in flight: (message id, fence).
using ClaimKey = std::pair<int64_t, int64_t>;
ClaimKey KeyOf(const bus::Lease& lease) { return {lease.message_id, lease.fence}; }

// The claim and flush statements are primary-key lookups and ordered index scans. A plan made
// while agent_messages was nearly empty (a fresh database) scans the whole table instead, and
// the cached plan keeps doing so as the table grows, until the next ANALYZE. These sessions
// plan each statement once, generically, without sequential scans where an index can serve:
// with enable_seqscan off alone, the plan cache would keep re-planning (custom plans),
// which costs a claim more than its execution.
void PreferIndexScans(pqxx::connection& conn) {
  pqxx::nontransaction(conn).exec(
      "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan");
}

std::string Hostname() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

std::string DefaultWorkerId(const WorkerOptions& o) {
  std::random_device rd;
  return fmt::format("{}-{}-{}.{}-{:04x}", Hostname(), getpid(), o.service, o.role, rd() & 0xffff);
}

}  // namespace

class Worker::Impl {
 public:
  Impl(WorkerOptions options, Handler handler, wake::WakeHub* wake,
       std::shared_ptr<spdlog::logger> logger, metrics::BusMetrics* metrics)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        wake_(wake),
        logger_(std::move(logger)),
        id_(options_.worker_id.empty() ? DefaultWorkerId(options_) : options_.worker_id),
        capacity_(options_.concurrency + options_.batch_size) {
    if (!bus::ValidRouteName(options_.service)) {
      throw std::invalid_argument(bus::DescribeRouteNameRule("service", options_.service));
    }
    if (!bus::ValidRouteName(options_.role)) {
      throw std::invalid_argument(bus::DescribeRouteNameRule("role", options_.role));
    }
    if (metrics != nullptr) route_metrics_ = metrics->ForRoute(options_.service, options_.role);
  }

  void Start() {
    if (wake_ != nullptr) {
      subscription_ = wake_->Subscribe(options_.service, options_.role, options_.shards, [this] {
        {
          std::lock_guard lock(mu_);
          wake_pending_ = true;
        }
        cv_claim_.notify_one();
      });
    }
    flusher_ = std::jthread([this](std::stop_token stop) { FlushLoop(stop); });
    for (int i = 0; i < options_.concurrency; ++i) {
      handlers_.emplace_back([this] { HandlerLoop(); });
    }
    claimer_ = std::jthread([this](std::stop_token stop) { ClaimLoop(stop); });
  }

  void Drain() {
    {
      std::lock_guard lock(mu_);
      if (drained_) return;
      drained_ = true;
      claiming_ = false;
    }
    cv_claim_.notify_all();
    if (claimer_.joinable()) {
      claimer_.request_stop();
      claimer_.join();
    }
    subscription_ = {};
    {
      // Messages no handler started go back to the queue at once.
      std::unique_lock lock(mu_);
      for (auto& job : ready_) outcomes_.push_back(Outcome::Release(job->message.lease));
      ready_.clear();
      cv_flush_.notify_one();
      // A handler still running when the grace runs out may still have side effects, and one
      // that always hangs must reach the dead letters: its attempt counts, as a retryable
      // failure named drain_timeout (its late outcome is dropped; the fence refuses it anyway).
      if (!cv_idle_.wait_for(lock, options_.drain_grace, [&] { return running_ == 0; })) {
        logger_->warn("drain grace of {} ms ran out with {} handlers running; failing them as {}",
                      options_.drain_grace.count(), running_, kDrainTimeout);
        std::mt19937_64 rng(std::random_device{}());
        for (auto& [key, job] : in_flight_) {
          if (job->state != Job::State::running) continue;
          job->stop.request_stop();
          job->state = Job::State::abandoned;
          const bus::Lease& lease = job->message.lease;
          const auto delay = policy::NextBackoff(
              lease.attempt, options_.retry_backoff, std::uniform_real_distribution<double>(0, 1)(rng));
          outcomes_.push_back(Outcome::Fail(
              {lease,
               fmt::format("{}: the handler still ran when the drain grace of {} ms ran out",
                           kDrainTimeout, options_.drain_grace.count()),
               bus::FailureKind::retryable, delay.count()}));
        }
      }
      stop_handlers_ = true;
    }
    cv_jobs_.notify_all();
    cv_flush_.notify_one();
    for (auto& t : handlers_) t.join();
    handlers_.clear();
    {
      std::lock_guard lock(mu_);
      stop_flusher_ = true;
    }
    cv_flush_.notify_one();
    if (flusher_.joinable()) flusher_.join();
  }

  const std::string& id() const { return id_; }

  WorkerStats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }

  std::string fatal_error() const {
    std::lock_guard lock(mu_);
    return fatal_error_;
  }

 private:
  struct Job {
    enum class State { ready, running, finished, abandoned };
    bus::ClaimedMessage message;
    std::stop_source stop;
    State state = State::ready;
    std::optional<policy::TimePoint> deadline;  // set when the handler starts
  };

  struct Outcome {
    enum class Kind { complete, fail, release, committed };
    Kind kind = Kind::complete;
    bus::Completion completion;
    bus::Failure failure;
    std::vector<bus::PublishRequest> publish;
    std::vector<bus::AuditEvent> events;
    std::optional<bus::UsageRecord> usage;

    static Outcome Release(const bus::Lease& lease) {
      Outcome o;
      o.kind = Kind::release;
      o.completion.lease = lease;
      return o;
    }
    static Outcome Fail(bus::Failure failure) {
      Outcome o;
      o.kind = Kind::fail;
      o.failure = std::move(failure);
      return o;
    }
    [[nodiscard]] const bus::Lease& lease() const {
      return kind == Kind::fail ? failure.lease : completion.lease;
    }
  };

  int FreeCapacity() const { return capacity_ - static_cast<int>(in_flight_.size()); }

  // Runs a loop on its own connection (db::RunConnected); a failure that ends it is fatal for
  // the worker (recorded, reported through fatal_error()). Both loops may run again after a
  // commit in doubt: a claim that did commit only leaves leases that the next connection
  // releases (ReleaseOrphans); a flush that did commit finds its leases gone on the retry and
  // writes nothing.
  void RunWithReconnect(std::stop_token stop, const char* loop, const std::string& application_name,
                        const std::function<void(pqxx::connection&, bool)>& body) {
    const db::Connector connector(options_.database_url, application_name);
    auto fatal = db::RunConnected(connector, stop, *logger_, loop, db::InDoubt::retry, body);
    if (fatal.empty()) return;
    std::lock_guard lock(mu_);
    if (fatal_error_.empty()) fatal_error_ = std::move(fatal);
    claiming_ = false;
  }

  // Waits until the claimer should look again: a wake-up, a stop, or `timeout`.
  // Returns false when claiming stopped.
  bool WaitToClaim(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_claim_.wait_for(lock, timeout, [&] { return !claiming_ || wake_pending_; });
    return claiming_;
  }

  void ClaimLoop(std::stop_token stop) {
    RunWithReconnect(stop, "claim", "cogo-claim:" + options_.service + "/" + options_.role,
                     [&](pqxx::connection& conn, bool reconnected) {
      PreferIndexScans(conn);
      // A lost claim commit only puts the message back in the queue (the worker's later
      // completion then fails its lease check), so claims need not wait for the WAL flush.
      pqxx::nontransaction(conn).exec("SET synchronous_commit = off");
      bus::Bus bus(conn);
      bus.RegisterWorker({id_, options_.service, options_.role, options_.shards, Hostname(),
                          static_cast<int>(getpid())});
      if (reconnected) GiveBackOrphans(bus);
      // The idle protocol (sql/005_wake_locks.sql). A worker that finds nothing announces
      // itself: it takes its shards' wake locks (producers then NOTIFY) or finds some held by
      // another sentinel (whose wake-ups reach it too, and which wakes the shards when it
      // leaves), claims once more and waits. A worker covered by another announces again after
      // each wait, and waits at most kCoveredLook: a sentinel that dies frees its locks without
      // a NOTIFY. If producers were mid-commit instead, it holds nothing and looks again after
      // a backoff from 1 ms to kBusyLook. Without a WakeHub nobody would hear a NOTIFY, so the
      // worker only polls.
      enum class Idle { no, standby, covered, sentinel } idle = Idle::no;
      bool just_announced = false;  // the next empty claim is the look after announcing
      bool found_work = false;      // the last claim returned messages
      auto backoff = std::chrono::milliseconds(0);
      auto gather = std::chrono::milliseconds(0);
      while (true) {
        int want = 0;
        {
          std::unique_lock lock(mu_);
          cv_claim_.wait(lock, [&] { return !claiming_ || FreeCapacity() > 0; });
          if (!claiming_) break;
          want = std::min(options_.batch_size, FreeCapacity());
          // A wake-up during the announcement must not be lost: it may be a leaving sentinel's.
          if (!just_announced) wake_pending_ = false;
        }
        auto claimed = bus.Claim({id_, options_.service, options_.role, options_.shards, want,
                                  options_.lease.count()});
        if (!claimed.empty()) {
          const size_t found = claimed.size();
          const bool emptied_queue = found < static_cast<size_t>(want);
          Enqueue(std::move(claimed));
          // An announced worker stays so over one short batch: at a trickle the next claim
          // finds nothing and it waits again, with no round trips to give the locks back and
          // take them anew. A full batch, or work found twice in a row, means the route is busy:
          // producers must stop paying for a NOTIFY per message.
          if (idle != Idle::no && (!emptied_queue || found_work)) {
            if (idle != Idle::standby) bus.LeaveIdle(options_.service, options_.role, options_.shards);
            idle = Idle::no;
          }
          found_work = true;
          just_announced = false;
          backoff = std::chrono::milliseconds(0);
          // After a short claim, let work gather (NextGatherPause), cut short by a wake-up.
          gather = NextGatherPause(gather, found, static_cast<size_t>(want));
          if (gather > std::chrono::milliseconds(0) && !WaitToClaim(gather)) break;
          continue;
        }
        found_work = false;
        gather = std::chrono::milliseconds(0);
        if (wake_ == nullptr || idle == Idle::sentinel || just_announced) {
          just_announced = false;
          const bool covered = wake_ != nullptr && idle != Idle::sentinel;
          if (!WaitToClaim(covered ? std::min(options_.poll, kCoveredLook) : options_.poll)) break;
          continue;
        }
        using Result = bus::Bus::IdleResult;
        const Result result = bus.AnnounceIdle(id_, options_.service, options_.role, options_.shards);
        if (result == Result::busy) {
          const auto cap = std::max(std::chrono::milliseconds(1), std::min(options_.poll, kBusyLook));
          backoff = std::min(std::max(backoff * 2, std::chrono::milliseconds(1)), cap);
          if (!WaitToClaim(backoff)) break;
          continue;
        }
        idle = result == Result::sentinel ? Idle::sentinel
               : result == Result::covered ? Idle::covered
                                           : Idle::standby;
        just_announced = true;  // look once more: work committed before the locks was not announced
        backoff = std::chrono::milliseconds(0);
      }
      // Another idle worker takes over at once.
      if (idle == Idle::sentinel || idle == Idle::covered) {
        bus.LeaveIdle(options_.service, options_.role, options_.shards);
      }
    });
  }

  // A claim whose answer was lost with the connection may have committed: its messages are
  // leased to this worker, which never saw them. They go back to the queue unrun, their attempt
  // given back (instead of waiting for the lease to expire and spending it).
  void GiveBackOrphans(bus::Bus& bus) {
    for (const bus::Lease& lease : bus.LeasesOf(id_)) {
      {
        std::lock_guard lock(mu_);
        if (in_flight_.count(KeyOf(lease)) != 0) continue;  // a claim this worker saw
      }
      const auto result = bus.Fail({lease, "claim_lost: the claim's answer was lost with its connection",
                                    bus::FailureKind::infrastructure, 0});
      logger_->warn("message {} was claimed by a claim whose answer was lost: {}", lease.message_id,
                    bus::FailOutcomeName(result));
    }
  }

  void Enqueue(std::vector<bus::ClaimedMessage> claimed) {
    {
      std::lock_guard lock(mu_);
      for (auto& m : claimed) {
        metrics::Observe(route_metrics_.queue_wait_seconds,
                         m.claimed_at_epoch - m.created_at_epoch);
        auto job = std::make_shared<Job>();
        job->message = std::move(m);
        in_flight_[KeyOf(job->message.lease)] = job;
        ready_.push_back(std::move(job));
      }
      stats_.claimed += claimed.size();
    }
    metrics::Increment(route_metrics_.claimed, static_cast<double>(claimed.size()));
    // One handler per message: waking them all for a single message costs context switches
    // that a no-op handler's whole run does not.
    if (claimed.size() >= static_cast<size_t>(options_.concurrency)) {
      cv_jobs_.notify_all();
    } else {
      for (size_t i = 0; i < claimed.size(); ++i) cv_jobs_.notify_one();
    }
  }

  void HandlerLoop() {
    std::mt19937_64 rng(std::random_device{}());
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mu_);
        cv_jobs_.wait(lock, [&] { return stop_handlers_ || !ready_.empty(); });
        if (ready_.empty()) return;
        job = std::move(ready_.front());
        ready_.pop_front();
        job->state = Job::State::running;
        ++running_;
      }
      const auto started = Clock::now();
      Outcome outcome = RunGuarded(*job, rng, unit);
      metrics::Observe(route_metrics_.handler_seconds,
                       std::chrono::duration<double>(Clock::now() - started).count());
      {
        std::lock_guard lock(mu_);
        --running_;
        // An abandoned job was already released; its late outcome would only fail the lease.
        // A committed one is already written: only the bookkeeping is left.
        if (outcome.kind == Outcome::Kind::committed) {
          auto it = in_flight_.find(KeyOf(job->message.lease));
          if (it != in_flight_.end() && it->second == job) in_flight_.erase(it);
          ++stats_.completed;
          cv_claim_.notify_one();
        } else if (job->state != Job::State::abandoned) {
          outcomes_.push_back(std::move(outcome));
        }
        job->state = Job::State::finished;
      }
      cv_flush_.notify_one();
      cv_idle_.notify_all();
    }
  }

  // The guards around one handler call: the assignment is checked before the handler runs and
  // judged again after it returns (deadline, budget); the result becomes an Outcome.
  Outcome RunGuarded(Job& job, std::mt19937_64& rng, std::uniform_real_distribution<double>& unit) {
    const bus::ClaimedMessage& m = job.message;
    std::optional<policy::AssignmentEnvelope> assignment;
    std::optional<HandlerResult> verdict;
    if (options_.enforce_assignment &&
        (m.payload_json.find("\"__assignment\"") != std::string::npos || options_.require_assignment)) {
      auto parsed = policy::ParseAssignment(m.payload_json);
      if (parsed.ok()) {
        assignment = parsed.envelope();
      } else if (parsed.error().code != policy::AssignmentErrorCode::missing_assignment) {
        verdict = Violation("assignment_invalid", parsed.error().ToString());
      } else if (options_.require_assignment) {
        verdict = Violation("assignment_missing", "the payload has no __assignment");
      }
    }
    std::optional<policy::TimePoint> deadline;
    if (assignment && !verdict) {
      const auto& served = options_.served_models;
      deadline = policy::Deadline(*assignment, {FromEpochSeconds(m.created_at_epoch), std::nullopt});
      if (!served.empty() && std::find(served.begin(), served.end(), assignment->model) == served.end()) {
        verdict = Violation("model_not_served", "this worker does not serve model " + assignment->model);
      } else if (SystemClock::now() >= *deadline) {
        verdict = Violation("ttl_exceeded", "the assignment's TTL ran out before the work started");
      }
    }
    if (deadline) {
      {
        std::lock_guard lock(mu_);
        job.deadline = deadline;
        deadline_added_ = true;
      }
      cv_flush_.notify_one();  // the flusher's watchdog re-plans its wake-up
    }
    UsageGuard usage(assignment ? std::optional<policy::Budget>(assignment->budget) : std::nullopt,
                     job.stop);
    if (!verdict) {
      HandlerContext context{m, job.stop.get_token(), assignment ? &*assignment : nullptr, deadline, usage};
      try {
        verdict = handler_(context);
      } catch (const PermanentError& e) {
        verdict = HandlerResult::Fail(e.what());
      } catch (const std::exception& e) {
        verdict = db::Classify(e) == db::FailureKind::connection_lost
                      ? HandlerResult::GiveBack(e.what())
                      : HandlerResult::Retry(e.what());
      } catch (...) {
        verdict = HandlerResult::Retry("handler threw a non-standard exception");
      }
      // The guards outrank what the handler says, unless it already committed its outcome.
      const bool judged = verdict->kind != HandlerResult::Kind::committed;
      if (judged && usage.verdict() != policy::MeterVerdict::within) {
        const auto spent = usage.total();
        verdict = Violation("budget_exceeded",
                            fmt::format("{} ({} tokens, {:.6f} USD spent)",
                                        policy::VerdictName(usage.verdict()),
                                        spent.total_tokens(), spent.cost_usd));
      } else if (judged && deadline && SystemClock::now() > *deadline) {
        verdict = Violation("ttl_exceeded", "the handler ran past the assignment's TTL");
      }
    }
    return ToOutcome(m, std::move(*verdict), assignment, usage, rng, unit);
  }

  Outcome ToOutcome(const bus::ClaimedMessage& m, HandlerResult result,
                    const std::optional<policy::AssignmentEnvelope>& assignment,
                    const UsageGuard& usage, std::mt19937_64& rng,
                    std::uniform_real_distribution<double>& unit) {
    // A follow-up or event that cannot be written would fail the whole flush: judge it here.
    if (result.kind == HandlerResult::Kind::complete) {
      for (const auto& follow_up : result.publish) {
        if (auto rejection = bus::Validate(follow_up, {})) {
          result = HandlerResult::Fail("invalid_follow_up: " + rejection->reason + ": " + rejection->detail);
          break;
        }
      }
    }
    if ((!result.result_json.empty() && !nlohmann::json::accept(result.result_json)) ||
        std::any_of(result.events.begin(), result.events.end(), [](const bus::AuditEvent& e) {
          return e.event.empty() || (!e.detail_json.empty() && !nlohmann::json::accept(e.detail_json));
        })) {
      result = HandlerResult::Fail("invalid_handler_result: result or event detail is not JSON");
    }

    Outcome outcome;
    const bus::Lease& lease = m.lease;
    if (result.kind == HandlerResult::Kind::committed) {
      outcome.kind = Outcome::Kind::committed;
      outcome.completion.lease = lease;
      return outcome;
    }
    for (auto& e : result.events) {
      if (e.message_id == 0) e.message_id = lease.message_id;
    }
    outcome.events = std::move(result.events);
    if (result.kind == HandlerResult::Kind::complete) {
      outcome.completion = {lease, std::move(result.result_json), std::move(result.snippet),
                            std::move(result.url)};
      outcome.publish = std::move(result.publish);
      for (auto& follow_up : outcome.publish) follow_up.parent_id = lease.message_id;
    } else {
      outcome.kind = Outcome::Kind::fail;
      const auto delay = result.retry_delay.value_or(
          policy::NextBackoff(lease.attempt, options_.retry_backoff, unit(rng)));
      const auto kind = result.kind == HandlerResult::Kind::retry       ? bus::FailureKind::retryable
                        : result.kind == HandlerResult::Kind::give_back ? bus::FailureKind::infrastructure
                                                                        : bus::FailureKind::permanent;
      outcome.failure = {lease, std::move(result.error), kind, delay.count()};
    }
    if (usage.reported()) {
      const std::string outcome_name =
          outcome.kind == Outcome::Kind::complete
              ? "completed"
              : outcome.failure.error.substr(0, outcome.failure.error.find(':'));
      outcome.usage = bus::UsageRecord{lease,
                                       m.tenant,
                                       m.route,
                                       assignment ? assignment->agent_id : "",
                                       assignment ? assignment->version : "",
                                       assignment ? assignment->model : "",
                                       usage.total(),
                                       outcome_name};
    }
    return outcome;
  }

  // Requests the stop of handlers whose deadline passed; returns when the next one is due.
  Clock::time_point EnforceDeadlines() {
    const auto system_now = SystemClock::now();
    const auto steady_now = Clock::now();
    auto next = Clock::time_point::max();
    std::lock_guard lock(mu_);
    for (auto& [key, job] : in_flight_) {
      if (job->state != Job::State::running || !job->deadline || job->stop.stop_requested()) continue;
      if (*job->deadline <= system_now) {
        logger_->warn("message {} ran past its deadline; stopping its handler", key.first);
        job->stop.request_stop();
      } else {
        next = std::min(next, steady_now + std::chrono::duration_cast<Clock::duration>(
                                               *job->deadline - system_now));
      }
    }
    return next;
  }

  void FlushLoop(std::stop_token stop) {
    RunWithReconnect(stop, "flush", "cogo-flush:" + options_.service + "/" + options_.role,
                     [&](pqxx::connection& conn, bool reconnected) {
      PreferIndexScans(conn);
      if (reconnected) logger_->info("flush loop retries {} unflushed outcomes", unflushed_.size());
      bus::Bus bus(conn);
      auto next_heartbeat = Clock::now() + options_.heartbeat;
      std::vector<Outcome>& batch = unflushed_;  // survives a reconnect: it is retried first
      while (true) {
        bool finish = false;
        if (batch.empty()) {  // a batch left from a failed attempt is retried first
          const auto wake_at = std::min(next_heartbeat, EnforceDeadlines());
          std::unique_lock lock(mu_);
          cv_flush_.wait_until(lock, wake_at,
                               [&] { return stop_flusher_ || !outcomes_.empty() || deadline_added_; });
          deadline_added_ = false;
          batch.swap(outcomes_);
          finish = stop_flusher_ && batch.empty();
        }
        if (finish) {
          bus.UnregisterWorker(id_);
          return;
        }
        if (!batch.empty()) {
          Flush(bus, batch);
          batch.clear();
        }
        if (Clock::now() >= next_heartbeat) {
          Heartbeat(bus);
          next_heartbeat = Clock::now() + options_.heartbeat;
        }
      }
    });
  }

  // Every outcome of the batch, with its follow-ups, events and usage, in one transaction. The
  // rows whose lease still holds are locked first, so the trail reads cause before effect:
  // domain events, then children (execute_enqueued), then the outcome itself.
  void Flush(bus::Bus& bus, const std::vector<Outcome>& batch) {
    std::vector<bus::Lease> leases;
    leases.reserve(batch.size());
    bool extras = false;
    bool only_completions = true;
    for (const auto& o : batch) {
      leases.push_back(o.lease());
      extras = extras || !o.publish.empty() || !o.events.empty() || o.usage.has_value();
      only_completions = only_completions && o.kind == Outcome::Kind::complete;
    }
    // Plain completions are one statement, atomic on its own: autocommit saves BEGIN and COMMIT.
    std::unique_ptr<pqxx::transaction_base> txn;
    if (only_completions && !extras) {
      txn = std::make_unique<pqxx::nontransaction>(bus.connection(), "flush");
    } else {
      txn = std::make_unique<pqxx::work>(bus.connection(), "flush");
    }
    // Plain outcomes need no lock: the complete/fail/release statements check the lease
    // themselves. Only what rides along (children, events, usage) must wait for that verdict.
    const std::vector<bool> held =
        extras ? bus.LockLeases(*txn, leases) : std::vector<bool>(batch.size(), true);

    WorkerStats delta;
    std::vector<bus::PublishRequest> follow_ups;
    std::vector<bus::AuditEvent> events;
    std::vector<bus::UsageRecord> usage;
    std::vector<bus::Completion> completions;
    std::vector<const Outcome*> failures;
    for (size_t i = 0; i < batch.size(); ++i) {
      const Outcome& o = batch[i];
      if (!held[i]) {
        ++delta.lease_lost;  // reclaimed or cancelled meanwhile: leave nothing behind
        continue;
      }
      follow_ups.insert(follow_ups.end(), o.publish.begin(), o.publish.end());
      events.insert(events.end(), o.events.begin(), o.events.end());
      if (o.usage) usage.push_back(*o.usage);
      if (o.kind == Outcome::Kind::complete) completions.push_back(o.completion);
      if (o.kind == Outcome::Kind::fail) failures.push_back(&o);
      if (o.kind == Outcome::Kind::release) {
        ++(bus.Release(*txn, o.lease()) ? delta.released : delta.lease_lost);
      }
    }
    bus.AddEvents(*txn, events);
    if (!follow_ups.empty()) (void)bus.PublishBatch(*txn, follow_ups);
    for (bool h : bus.CompleteBatch(*txn, completions)) ++(h ? delta.completed : delta.lease_lost);
    for (const Outcome* o : failures) {
      const auto result = bus.Fail(*txn, o->failure);
      switch (result) {
        case bus::FailOutcome::requeued: ++delta.retried; break;
        case bus::FailOutcome::dead_lettered:
        case bus::FailOutcome::failed: ++delta.failed; break;
        case bus::FailOutcome::lease_lost: ++delta.lease_lost; break;
      }
      logger_->warn("message {} attempt {} failed ({}): {}", o->failure.lease.message_id,
                    o->failure.lease.attempt, bus::FailOutcomeName(result), o->failure.error);
    }
    bus.RecordUsage(*txn, usage);
    txn->commit();
    if (delta.lease_lost > 0) {
      logger_->warn("{} outcomes arrived after their lease was lost (reclaimed or cancelled)",
                    delta.lease_lost);
    }
    metrics::Increment(route_metrics_.completed, static_cast<double>(delta.completed));
    metrics::Increment(route_metrics_.retried, static_cast<double>(delta.retried));
    metrics::Increment(route_metrics_.failed, static_cast<double>(delta.failed));
    metrics::Increment(route_metrics_.released, static_cast<double>(delta.released));
    metrics::Increment(route_metrics_.lease_lost, static_cast<double>(delta.lease_lost));
    {
      std::lock_guard lock(mu_);
      for (const auto& o : batch) {
        in_flight_.erase(KeyOf(o.lease()));
      }
      stats_.completed += delta.completed;
      stats_.retried += delta.retried;
      stats_.failed += delta.failed;
      stats_.released += delta.released;
      stats_.lease_lost += delta.lease_lost;
    }
    cv_claim_.notify_one();
  }

  void Heartbeat(bus::Bus& bus) {
    std::vector<bus::Lease> leases;
    {
      std::lock_guard lock(mu_);
      leases.reserve(in_flight_.size());
      for (const auto& [key, job] : in_flight_) leases.push_back(job->message.lease);
    }
    bus.TouchWorker(id_);
    if (leases.empty()) return;
    const std::vector<bool> held = bus.Heartbeat(leases, options_.lease.count());
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < leases.size(); ++i) {
      if (held[i]) continue;
      auto it = in_flight_.find(KeyOf(leases[i]));
      if (it == in_flight_.end()) continue;
      // Reclaimed, cancelled or claimed again under us: tell the handler to stop; its outcome
      // will be refused.
      logger_->warn("lost the lease of message {} (fence {}); stopping its handler",
                    leases[i].message_id, leases[i].fence);
      it->second->stop.request_stop();
    }
  }

  const WorkerOptions options_;
  const Handler handler_;
  wake::WakeHub* const wake_;
  const std::shared_ptr<spdlog::logger> logger_;
  const std::string id_;
  const int capacity_;  // running + waiting + awaiting flush
  metrics::BusMetrics::Route route_metrics_{};

  mutable std::mutex mu_;
  std::condition_variable cv_claim_;
  std::condition_variable cv_jobs_;
  std::condition_variable cv_flush_;
  std::condition_variable cv_idle_;
  std::deque<std::shared_ptr<Job>> ready_;
  // Keyed by claim, not by message: a message cancelled, retried and claimed again while its
  // first handler still runs is in flight twice, and each claim keeps its own heartbeat.
  std::map<ClaimKey, std::shared_ptr<Job>> in_flight_;
  std::vector<Outcome> outcomes_;
  std::vector<Outcome> unflushed_;  // the flusher's batch in progress (flusher thread only)
  int running_ = 0;
  bool wake_pending_ = false;
  bool claiming_ = true;
  bool stop_handlers_ = false;
  bool stop_flusher_ = false;
  bool drained_ = false;
  bool deadline_added_ = false;
  WorkerStats stats_;
  std::string fatal_error_;

  wake::WakeHub::Subscription subscription_;
  std::jthread flusher_;
  std::vector<std::jthread> handlers_;
  std::jthread claimer_;
};

Worker::Worker(WorkerOptions options, Handler handler, wake::WakeHub* wake,
               std::shared_ptr<spdlog::logger> logger, metrics::BusMetrics* metrics)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), wake,
                                   std::move(logger), metrics)) {}

Worker::~Worker() { impl_->Drain(); }

void Worker::Start() { impl_->Start(); }
void Worker::Drain() { impl_->Drain(); }
const std::string& Worker::id() const { return impl_->id(); }
WorkerStats Worker::stats() const { return impl_->stats(); }
std::string Worker::fatal_error() const { return impl_->fatal_error(); }

}  // namespace cogo::runtime
