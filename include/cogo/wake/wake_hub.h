// WakeHub: the process's one LISTEN connection. It LISTENs on the wake-up channel of each route
// a subscriber names (sql/028: one channel per route, so the session forwards only the wake-ups
// of this process's routes), turns each notification into calls of the callbacks subscribed to
// its route and shard, and reconnects with backoff when the connection drops. Whenever it
// starts listening on a route's channel (for its first subscriber, or on a new connection) it
// calls that route's subscribers once, since notifications may have been missed; a subscriber
// then reads its Subscription's heard() to know the LISTEN is up. Workers never depend on it
// for correctness: they also poll. Thread-safe; callbacks run on the hub's thread and must
// return quickly (signal a condition variable, no database work).
//
// A started hub LISTENs from its first subscriber on: PostgreSQL signals every listening session
// of the database for every NOTIFY, whatever its channel, so a process without workers (the
// edge, retention, the reclaimer) that listened anyway would cost the server a process woken per
// message. A route whose workers all left stays listened on until the connection is replaced
// (workers leave when their process stops).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/base/event_fd.h"

namespace cogo::wake {

struct WakeHubOptions {
  std::string database_url;
  std::chrono::milliseconds max_wait{200};          // bound on one wait (Stop and Subscribe also end it)
  std::chrono::milliseconds reconnect_initial{100};  // backoff after a dropped connection...
  std::chrono::milliseconds reconnect_max{5000};     // ...doubling up to this
};

class WakeHub {
 public:
  using Callback = std::function<void()>;

  // Whether the hub's connection LISTENs on a subscriber's route now; read without any lock
  // (a subscriber may read it under its own locks, which the hub's callbacks take).
  using Heard = std::shared_ptr<const std::atomic<bool>>;

  // Unsubscribes when destroyed; must not outlive the hub.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(WakeHub* hub, uint64_t id, Heard heard) : hub_(hub), id_(id), heard_(std::move(heard)) {}
    Subscription(Subscription&& other) noexcept;
    Subscription& operator=(Subscription&& other) noexcept;
    ~Subscription();

    [[nodiscard]] const Heard& heard() const { return heard_; }

   private:
    WakeHub* hub_ = nullptr;
    uint64_t id_ = 0;
    Heard heard_;
  };

  WakeHub(WakeHubOptions options, std::shared_ptr<spdlog::logger> logger);
  ~WakeHub();
  WakeHub(const WakeHub&) = delete;
  WakeHub& operator=(const WakeHub&) = delete;

  // Start lets the hub LISTEN (at once, or from its first subscriber on); Stop ends it.
  void Start();
  void Stop();

  [[nodiscard]] Subscription Subscribe(std::string service, std::string role,
                                       std::vector<int> shards, Callback callback);

  // Observability (and tests): the LISTEN backend's pid, 0 while disconnected.
  [[nodiscard]] int backend_pid() const { return backend_pid_.load(); }
  [[nodiscard]] uint64_t connects() const { return connects_.load(); }
  [[nodiscard]] uint64_t notifications() const { return notifications_.load(); }

  // Called by the LISTEN receiver with a notification's payload ("service/role/shard").
  void Dispatch(const std::string& payload);

 private:
  using Route = std::pair<std::string, std::string>;  // service, role
  class Listener;  // one connection's LISTENs (wake_hub.cpp)
  struct Subscriber {
    std::string service;
    std::string role;
    std::vector<int> shards;
    Callback callback;
    std::shared_ptr<std::atomic<bool>> heard;
  };

  void Listen();  // starts the LISTEN thread unless it runs (mu_ held)
  void Run(std::stop_token stop);
  void Deafen();  // the connection is gone: no route is heard
  void Unsubscribe(uint64_t id);

  WakeHubOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  std::mutex mu_;
  std::map<uint64_t, Subscriber> subscribers_;
  std::set<Route> heard_;  // routes whose channel the current connection LISTENs on
  base::EventFd interrupt_;  // ends the LISTEN thread's wait: a new subscriber, or Stop
  bool started_ = false;  // between Start and Stop
  uint64_t next_id_ = 1;
  std::atomic<int> backend_pid_{0};
  std::atomic<uint64_t> connects_{0};
  std::atomic<uint64_t> notifications_{0};
  std::jthread thread_;
};

}  // namespace cogo::wake
