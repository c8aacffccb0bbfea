#include "cogo/wake/wake_hub.h"

#include <poll.h>

#include <algorithm>

#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/notification>

#include "cogo/base/sleep.h"
#include "cogo/bus/bus.h"
#include "cogo/bus/keys.h"
#include "cogo/db/reconnect.h"

namespace cogo::wake {

namespace {

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, const std::string& channel, WakeHub& hub)
      : pqxx::notification_receiver(conn, channel), hub_(hub) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    hub_.Dispatch(payload);
  }

 private:
  WakeHub& hub_;
};

}  // namespace

// The LISTENs of one connection, a receiver per channel.
class WakeHub::Listener {
 public:
  Listener(pqxx::connection& conn, WakeHub& hub) : conn_(conn), hub_(hub), bus_(conn) {}

  // LISTENs on the channels of the routes subscribed since the last call (or since the
  // connection opened) and calls their subscribers.
  void ListenToNewRoutes() {
    std::set<Route> fresh;
    {
      std::lock_guard lock(hub_.mu_);
      for (const auto& [id, s] : hub_.subscribers_) {
        if (hub_.heard_.count({s.service, s.role}) == 0) fresh.insert({s.service, s.role});
      }
    }
    for (const Route& route : fresh) {
      const std::string channel = bus_.WakeChannel(route.first, route.second);
      // Two routes whose hashes collide share a channel, and its one LISTEN serves both.
      if (receivers_.count(channel) == 0) receivers_[channel] = std::make_unique<Receiver>(conn_, channel, hub_);
      // pqxx registers the receiver even when the LISTEN failed on a broken connection.
      if (!conn_.is_open()) throw pqxx::broken_connection("the LISTEN connection closed");
      // Notifications sent before the LISTEN are lost: the route's workers look once. This also
      // tells a waiting Worker::WaitReady that the LISTEN is up.
      std::lock_guard lock(hub_.mu_);
      hub_.heard_.insert(route);
      for (auto& [id, s] : hub_.subscribers_) {
        if (s.service != route.first || s.role != route.second) continue;
        *s.heard = true;
        s.callback();
      }
    }
  }

  // Waits up to max_wait for notifications (dispatching them), a new subscriber or Stop.
  void Await() {
    conn_.get_notifs();  // also what libpq read already, which poll() would not report
    if (!conn_.is_open()) throw pqxx::broken_connection("the LISTEN connection closed");
    pollfd fds[2] = {{hub_.interrupt_.fd(), POLLIN, 0}, {conn_.sock(), POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(hub_.options_.max_wait.count())) > 0 && (fds[0].revents & POLLIN) != 0) {
      hub_.interrupt_.Take();
    }
    conn_.get_notifs();
  }

 private:
  pqxx::connection& conn_;
  WakeHub& hub_;
  bus::Bus bus_;  // asks for the channels' names
  std::map<std::string, std::unique_ptr<Receiver>> receivers_;  // by channel
};

WakeHub::Subscription::Subscription(Subscription&& other) noexcept
    : hub_(std::exchange(other.hub_, nullptr)), id_(other.id_), heard_(std::move(other.heard_)) {}

WakeHub::Subscription& WakeHub::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    if (hub_ != nullptr) hub_->Unsubscribe(id_);
    hub_ = std::exchange(other.hub_, nullptr);
    id_ = other.id_;
    heard_ = std::move(other.heard_);
  }
  return *this;
}

WakeHub::Subscription::~Subscription() {
  if (hub_ != nullptr) hub_->Unsubscribe(id_);
}

WakeHub::WakeHub(WakeHubOptions options, std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), logger_(std::move(logger)) {}

WakeHub::~WakeHub() { Stop(); }

void WakeHub::Start() {
  std::lock_guard lock(mu_);
  started_ = true;
  if (!subscribers_.empty()) Listen();
}

void WakeHub::Listen() {
  if (!thread_.joinable()) thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
}

void WakeHub::Stop() {
  std::jthread thread;
  {
    std::lock_guard lock(mu_);
    started_ = false;
    thread = std::move(thread_);
  }
  if (thread.joinable()) {  // outside mu_: the LISTEN loop takes it to call subscribers
    thread.request_stop();
    interrupt_.Signal();
    thread.join();
  }
}

WakeHub::Subscription WakeHub::Subscribe(std::string service, std::string role,
                                         std::vector<int> shards, Callback callback) {
  std::lock_guard lock(mu_);
  const uint64_t id = next_id_++;
  auto heard = std::make_shared<std::atomic<bool>>(heard_.count({service, role}) != 0);
  subscribers_[id] = {std::move(service), std::move(role), std::move(shards), std::move(callback), heard};
  if (started_) Listen();
  interrupt_.Signal();  // the LISTEN thread listens on a new route's channel at once
  return Subscription(this, id, std::move(heard));
}

void WakeHub::Unsubscribe(uint64_t id) {
  std::lock_guard lock(mu_);
  subscribers_.erase(id);
}

void WakeHub::Dispatch(const std::string& payload) {
  notifications_.fetch_add(1, std::memory_order_relaxed);
  const auto wake = bus::ParseWakeUp(payload);
  if (!wake) {
    logger_->warn("ignoring malformed wake-up payload '{}'", payload);
    return;
  }
  std::lock_guard lock(mu_);
  for (auto& [id, s] : subscribers_) {
    if (s.service == wake->service && s.role == wake->role &&
        std::find(s.shards.begin(), s.shards.end(), wake->shard) != s.shards.end()) {
      s.callback();
    }
  }
}

void WakeHub::Run(std::stop_token stop) {
  const db::Connector connector(options_.database_url, "cogo-wake",
                                {.first_pause = options_.reconnect_initial,
                                 .max_pause = options_.reconnect_max});
  // Nothing but a stop ends the LISTEN loop: after a failure it cannot classify, it tries again.
  while (!stop.stop_requested()) {
    const auto failure = db::RunConnected(connector, stop, *logger_, "LISTEN", db::InDoubt::retry,
                                          [&](pqxx::connection& conn, bool /*reconnected*/) {
      Listener listener(conn, *this);
      backend_pid_ = conn.backendpid();
      connects_.fetch_add(1);
      try {
        while (!stop.stop_requested()) {
          listener.ListenToNewRoutes();
          listener.Await();
        }
      } catch (...) {
        backend_pid_ = 0;
        Deafen();
        throw;
      }
    });
    if (!failure.empty()) (void)base::SleepFor(stop, options_.reconnect_max);
  }
  backend_pid_ = 0;
  Deafen();
}

void WakeHub::Deafen() {
  std::lock_guard lock(mu_);
  heard_.clear();
  for (auto& [id, s] : subscribers_) *s.heard = false;
}

}  // namespace cogo::wake
