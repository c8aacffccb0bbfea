// Prometheus metrics of the worker runtime: one set of families per registry, a child per
// route. Thread-safe (prometheus-cpp metrics are atomic). The registry must outlive it.
#pragma once

#include <string>

namespace prometheus {
class Counter;
class Histogram;
class Registry;
}  // namespace prometheus

namespace cogo::metrics {

class BusMetrics {
 public:
  struct Route {
    prometheus::Counter* claimed;
    prometheus::Counter* completed;
    prometheus::Counter* retried;
    prometheus::Counter* failed;
    prometheus::Counter* released;
    prometheus::Counter* lease_lost;
    prometheus::Histogram* handler_seconds;
    prometheus::Histogram* queue_wait_seconds;
  };

  explicit BusMetrics(prometheus::Registry& registry) : registry_(registry) {}
  [[nodiscard]] Route ForRoute(const std::string& service, const std::string& role);

 private:
  prometheus::Registry& registry_;
};

// Helpers so callers need no prometheus headers.
void Increment(prometheus::Counter* counter, double by = 1.0);
void Observe(prometheus::Histogram* histogram, double value);

}  // namespace cogo::metrics
