#include "cogo/wake/wake_hub.h"

#include <algorithm>
#include <condition_variable>

#include <pqxx/notification>

#include "cogo/db/reconnect.h"
#include "cogo/base/sleep.h"

namespace cogo::wake {
namespace {

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, WakeHub& hub)
      : pqxx::notification_receiver(conn, kBusChannel), hub_(hub) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    hub_.Dispatch(payload);
  }

 private:
  WakeHub& hub_;
};

}  // namespace

WakeHub::Subscription::Subscription(Subscription&& other) noexcept
    : hub_(std::exchange(other.hub_, nullptr)), id_(other.id_) {}

WakeHub::Subscription& WakeHub::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    if (hub_ != nullptr) hub_->Unsubscribe(id_);
    hub_ = std::exchange(other.hub_, nullptr);
    id_ = other.id_;
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
    thread.join();
  }
}

WakeHub::Subscription WakeHub::Subscribe(std::string service, std::string role,
                                         std::vector<int> shards, Callback callback) {
  std::lock_guard lock(mu_);
  const uint64_t id = next_id_++;
  subscribers_[id] = {std::move(service), std::move(role), std::move(shards), std::move(callback)};
  if (started_) Listen();
  return Subscription(this, id);
}

void WakeHub::Unsubscribe(uint64_t id) {
  std::lock_guard lock(mu_);
  subscribers_.erase(id);
}

void WakeHub::Dispatch(const std::string& payload) {
  notifications_.fetch_add(1, std::memory_order_relaxed);
  const auto first = payload.find('/');
  const auto second = payload.find('/', first == std::string::npos ? first : first + 1);
  if (first == std::string::npos || second == std::string::npos) {
    logger_->warn("ignoring malformed wake-up payload '{}'", payload);
    return;
  }
  const std::string_view view(payload);
  const std::string_view service = view.substr(0, first);
  const std::string_view role = view.substr(first + 1, second - first - 1);
  int shard = 0;
  try {
    shard = std::stoi(payload.substr(second + 1));
  } catch (const std::exception&) {
    logger_->warn("ignoring malformed wake-up payload '{}'", payload);
    return;
  }
  std::lock_guard lock(mu_);
  for (auto& [id, s] : subscribers_) {
    if (s.service == service && s.role == role &&
        std::find(s.shards.begin(), s.shards.end(), shard) != s.shards.end()) {
      s.callback();
    }
  }
}

void WakeHub::WakeAll() {
  std::lock_guard lock(mu_);
  for (auto& [id, s] : subscribers_) s.callback();
}

void WakeHub::Run(std::stop_token stop) {
  const db::Connector connector(options_.database_url, "cogo-wake",
                                {.first_pause = options_.reconnect_initial,
                                 .max_pause = options_.reconnect_max});
  const long wait_us = static_cast<long>(
      std::chrono::duration_cast<std::chrono::microseconds>(options_.max_wait).count());
  // Nothing but a stop ends the LISTEN loop: after a failure it cannot classify, it tries again.
  while (!stop.stop_requested()) {
    const auto failure = db::RunConnected(connector, stop, *logger_, "LISTEN", db::InDoubt::retry,
                                          [&](pqxx::connection& conn, bool /*reconnected*/) {
      Receiver receiver(conn, *this);
      backend_pid_ = conn.backendpid();
      connects_.fetch_add(1);
      // Notifications sent while we were away (or before the first LISTEN) are lost: everyone
      // looks once. This also tells a waiting Worker::WaitReady that the LISTEN is up.
      WakeAll();
      try {
        while (!stop.stop_requested()) {
          conn.await_notification(wait_us / 1000000, wait_us % 1000000);
        }
      } catch (...) {
        backend_pid_ = 0;
        throw;
      }
    });
    if (!failure.empty()) (void)base::SleepFor(stop, options_.reconnect_max);
  }
  backend_pid_ = 0;
}

}  // namespace cogo::wake
