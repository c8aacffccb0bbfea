#include "cogo/runtime/worker.h"

#include <unistd.h>

#include <exception>
#include <iterator>
#include <random>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "cogo/bus/keys.h"
#include "cogo/db/reconnect.h"
#include "cogo/wake/wake_hub.h"
#include "runtime/worker_state.h"

namespace cogo::runtime {
namespace {

// The failure reason of a handler still running when the drain grace ran out.
constexpr const char* kDrainTimeout = "drain_timeout";

std::string DefaultWorkerId(const WorkerOptions& o) {
  std::random_device rd;
  return fmt::format("{}-{}-{}.{}-{:04x}", Hostname(), getpid(), o.service, o.role, rd() & 0xffff);
}

}  // namespace

std::string Hostname() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

WorkerState::WorkerState(WorkerOptions o, std::string worker_id, std::shared_ptr<spdlog::logger> log,
                         metrics::BusMetrics* metrics)
    : options(std::move(o)),
      id(std::move(worker_id)),
      clock(options.clock != nullptr ? *options.clock : base::RealClock()),
      logger(std::move(log)),
      capacity(options.concurrency + options.batch_size) {
  if (!bus::ValidRouteName(options.service)) {
    throw std::invalid_argument(bus::DescribeRouteNameRule("service", options.service));
  }
  if (!bus::ValidRouteName(options.role)) {
    throw std::invalid_argument(bus::DescribeRouteNameRule("role", options.role));
  }
  if (metrics != nullptr) route_metrics = metrics->ForRoute(options.service, options.role);
}

void WorkerState::SetReady(bool WorkerState::*flag, bool value) {
  {
    std::lock_guard lock(mu);
    this->*flag = value;
  }
  cv_ready.notify_all();
}

void WorkerState::RunWithReconnect(std::stop_token stop, const char* loop,
                                   const std::string& application_name, const std::string& session_setup,
                                   bool WorkerState::*ready_flag,
                                   const std::function<void(pqxx::connection&, bool)>& body) {
  const db::Connector connector(options.database_url, application_name, db::ReconnectPolicy{}, session_setup);
  auto fatal = db::RunConnected(connector, stop, *logger, loop, db::InDoubt::retry,
                                [&](pqxx::connection& conn, bool reconnected) {
    try {
      body(conn, reconnected);
    } catch (...) {
      SetReady(ready_flag, false);
      throw;
    }
    SetReady(ready_flag, false);
  });
  {
    std::lock_guard lock(mu);
    if (!fatal.empty() && fatal_error.empty()) fatal_error = std::move(fatal);
    if (!fatal_error.empty()) claiming = false;
  }
  cv_ready.notify_all();  // WaitReady gives up on a stopped worker
}

// Lifecycle and the handler threads; the claimer and the flusher run on the shared state.
class Worker::Impl {
 public:
  Impl(WorkerOptions options, Handler handler, wake::WakeHub* wake,
       std::shared_ptr<spdlog::logger> logger, metrics::BusMetrics* metrics)
      : s_(options, options.worker_id.empty() ? DefaultWorkerId(options) : options.worker_id,
           std::move(logger), metrics),
        handler_(std::move(handler)),
        wake_(wake) {}

  void Start() {
    if (wake_ != nullptr) {
      // The hub also calls this when it starts listening on the route: WaitReady looks again.
      subscription_ = wake_->Subscribe(s_.options.service, s_.options.role, s_.options.shards, [this] {
        {
          std::lock_guard lock(s_.mu);
          s_.wake_pending = true;
        }
        s_.cv_claim.notify_one();
        s_.cv_ready.notify_all();
      });
      std::lock_guard lock(s_.mu);  // a health probe may read Ready() meanwhile
      heard_ = subscription_.heard();
    }
    flusher_ = std::jthread([this](std::stop_token stop) { RunFlusher(s_, stop); });
    for (int i = 0; i < s_.options.concurrency; ++i) {
      handlers_.emplace_back([this] { HandlerLoop(); });
    }
    claimer_ = std::jthread([this](std::stop_token stop) { RunClaimer(s_, wake_ != nullptr, stop); });
  }

  void Drain() {
    {
      std::lock_guard lock(s_.mu);
      if (s_.drained) return;
      s_.drained = true;
      s_.claiming = false;
    }
    s_.cv_claim.notify_all();
    s_.cv_ready.notify_all();
    if (claimer_.joinable()) {
      claimer_.request_stop();
      claimer_.join();
    }
    subscription_ = {};
    {
      // Messages no handler started go back to the queue at once.
      std::unique_lock lock(s_.mu);
      for (auto& job : s_.ready) s_.outcomes.push_back(Outcome::Release(job->message.lease));
      s_.ready.clear();
      s_.cv_flush.notify_one();
      // A handler still running when the grace runs out may still have side effects, and one
      // that always hangs must reach the dead letters: its attempt counts, as a retryable
      // failure named drain_timeout (its late outcome is dropped; the fence refuses it anyway).
      if (!s_.cv_idle.wait_for(lock, s_.options.drain_grace, [&] { return s_.running == 0; })) {
        s_.logger->warn("drain grace of {} ms ran out with {} handlers running; failing them as {}",
                      s_.options.drain_grace.count(), s_.running, kDrainTimeout);
        std::mt19937_64 rng(std::random_device{}());
        for (auto& [key, job] : s_.in_flight) {
          if (job->state != Job::State::running) continue;
          job->stop.request_stop();
          job->state = Job::State::abandoned;
          const bus::Lease& lease = job->message.lease;
          const auto delay = policy::NextBackoff(
              lease.attempt, s_.options.retry_backoff, std::uniform_real_distribution<double>(0, 1)(rng));
          s_.outcomes.push_back(Outcome::Fail(
              {lease,
               fmt::format("{}: the handler still ran when the drain grace of {} ms ran out",
                           kDrainTimeout, s_.options.drain_grace.count()),
               bus::FailureKind::retryable, delay.count()}));
        }
      }
      s_.stop_handlers = true;
    }
    s_.cv_jobs.notify_all();
    s_.cv_flush.notify_one();
    for (auto& t : handlers_) t.join();
    handlers_.clear();
    {
      std::lock_guard lock(s_.mu);
      s_.stop_flusher = true;
      // A flusher without a connection could wait for the database forever: what it holds is
      // left to the reclaimer (the leases expire) instead of holding the drain up.
      if (!s_.flusher_ready) flusher_.request_stop();
    }
    s_.cv_flush.notify_one();
    if (flusher_.joinable()) flusher_.join();
  }

  bool WaitReady(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(s_.mu);
    s_.cv_ready.wait_for(lock, timeout, [&] { return Ready() || s_.drained || !s_.fatal_error.empty(); });
    return Ready() && !s_.drained;
  }

  bool ready() const {
    std::lock_guard lock(s_.mu);
    return Ready() && !s_.drained;
  }

  const std::string& id() const { return s_.id; }

  WorkerStats stats() const {
    std::lock_guard lock(s_.mu);
    return s_.stats;
  }

  std::string fatal_error() const {
    std::lock_guard lock(s_.mu);
    return s_.fatal_error;
  }

 private:
  void HandlerLoop() {
    std::mt19937_64 rng(std::random_device{}());
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(s_.mu);
        s_.cv_jobs.wait(lock, [&] { return s_.stop_handlers || !s_.ready.empty(); });
        if (s_.ready.empty()) return;
        job = std::move(s_.ready.front());
        s_.ready.pop_front();
        job->state = Job::State::running;
        ++s_.running;
      }
      const auto started = std::chrono::steady_clock::now();
      Outcome outcome = RunGuarded(*job, unit(rng));
      metrics::Observe(s_.route_metrics.handler_seconds,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      bool queued = false;
      bus::Bus* flush_here = nullptr;  // the flusher's connection, lent to this thread
      std::vector<Outcome> batch;
      {
        std::lock_guard lock(s_.mu);
        --s_.running;
        // An abandoned job was already released; its late outcome would only fail the lease.
        // A committed one is already written: only the bookkeeping is left.
        if (outcome.kind == Outcome::Kind::committed) {
          auto it = s_.in_flight.find(KeyOf(job->message.lease));
          if (it != s_.in_flight.end() && it->second == job) s_.in_flight.erase(it);
          ++(outcome.lease_lost ? s_.stats.lease_lost : s_.stats.completed);
          metrics::Increment(outcome.lease_lost ? s_.route_metrics.lease_lost : s_.route_metrics.completed);
          s_.CapacityFreed();
        } else if (job->state != Job::State::abandoned) {
          s_.outcomes.push_back(std::move(outcome));
          queued = true;
        }
        job->state = Job::State::finished;
        // Nothing left to start: the claimer may take the next batch before this one is flushed.
        if (s_.ready.empty()) s_.CapacityFreed();
        if (queued && s_.MayFlushHere()) {
          s_.flush_user = WorkerState::FlushUser::handler;
          flush_here = s_.flush_bus;
          batch.swap(s_.outcomes);
        }
      }
      if (flush_here != nullptr) {
        FlushHere(*flush_here, batch);
      } else if (queued) {
        s_.cv_flush.notify_one();
      }
      s_.cv_idle.notify_all();
    }
  }

  // Writes the outcomes on the flusher's connection, lent while the flusher sleeps. A failure is
  // the flusher's to handle, as if its own write had failed: it replaces the connection and
  // writes them again.
  void FlushHere(bus::Bus& bus, std::vector<Outcome>& batch) {
    std::exception_ptr error;
    try {
      FlushOutcomes(s_, bus, batch);
    } catch (...) {
      error = std::current_exception();
    }
    bool wake_flusher = false;
    {
      std::lock_guard lock(s_.mu);
      s_.flush_user = WorkerState::FlushUser::none;
      if (!error) ++s_.stats.flushed_by_handlers;
      if (error) {
        s_.failed_flush.insert(s_.failed_flush.end(), std::make_move_iterator(batch.begin()),
                               std::make_move_iterator(batch.end()));
        s_.flush_error = error;
      }
      wake_flusher = error || !s_.outcomes.empty();  // else it sleeps on: waking it costs a context switch
    }
    s_.cv_connection.notify_one();
    if (wake_flusher) s_.cv_flush.notify_one();
  }

  // s_.mu held.
  bool Ready() const {
    return s_.claimer_ready && s_.flusher_ready && (wake_ == nullptr || (heard_ && *heard_));
  }

  // The guards around one handler call (runtime/guards.h): the assignment is checked before
  // the handler runs and judged again after it returns (deadline, budget).
  Outcome RunGuarded(Job& job, double unit_sample) {
    const bus::ClaimedMessage& m = job.message;
    BeforeRunVerdict before = BeforeRun(s_.options.guards, m, job.claim_sent, s_.clock.Now());
    if (before.deadline) {
      {
        std::lock_guard lock(s_.mu);
        job.deadline = before.deadline;
        s_.deadline_added = true;
      }
      s_.cv_flush.notify_one();  // the flusher's watchdog re-plans its wake-up
    }
    const policy::AssignmentEnvelope* assignment = before.assignment ? &*before.assignment : nullptr;
    UsageGuard usage(assignment ? std::optional<policy::Budget>(assignment->budget) : std::nullopt, job.stop);
    HandlerResult result;
    if (before.refusal) {
      result = std::move(*before.refusal);
    } else {
      HandlerContext context{m, job.stop.get_token(), assignment, before.deadline, usage};
      HandlerResult answer = CallHandler(handler_, context);  // first: the guards judge what it spent
      result = AfterRun(std::move(answer), usage.verdict(), usage.total(), before.deadline, s_.clock.Now());
    }
    return ToOutcome(m, std::move(result), assignment,
                     usage.reported() ? std::optional<policy::Usage>(usage.total()) : std::nullopt,
                     s_.options.retry_backoff, unit_sample);
  }

  WorkerState s_;
  const Handler handler_;
  wake::WakeHub* const wake_;
  wake::WakeHub::Subscription subscription_;
  wake::WakeHub::Heard heard_;  // the hub LISTENs on the route's channel (set by Start, kept by Drain)
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
bool Worker::WaitReady(std::chrono::milliseconds timeout) const { return impl_->WaitReady(timeout); }
bool Worker::ready() const { return impl_->ready(); }
const std::string& Worker::id() const { return impl_->id(); }
WorkerStats Worker::stats() const { return impl_->stats(); }
std::string Worker::fatal_error() const { return impl_->fatal_error(); }

}  // namespace cogo::runtime
