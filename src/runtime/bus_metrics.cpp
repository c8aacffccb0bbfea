#include "cogo/runtime/bus_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace cogo::metrics {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
  return kBuckets;
}

}  // namespace

BusMetrics::Route BusMetrics::ForRoute(const std::string& service, const std::string& role) {
  // prometheus-cpp returns the existing family when the same name is registered again.
  auto& messages = prometheus::BuildCounter()
                       .Name("cogo_worker_messages_total")
                       .Help("Messages a worker handled, by outcome")
                       .Register(registry_);
  auto& handler = prometheus::BuildHistogram()
                      .Name("cogo_worker_handler_seconds")
                      .Help("Time spent in the handler per message")
                      .Register(registry_);
  auto& wait = prometheus::BuildHistogram()
                   .Name("cogo_worker_queue_wait_seconds")
                   .Help("Time from publish to claim per message")
                   .Register(registry_);
  auto counter = [&](const char* outcome) {
    return &messages.Add({{"service", service}, {"role", role}, {"outcome", outcome}});
  };
  return Route{counter("claimed"),
               counter("completed"),
               counter("retried"),
               counter("failed"),
               counter("released"),
               counter("lease_lost"),
               &handler.Add({{"service", service}, {"role", role}}, LatencyBuckets()),
               &wait.Add({{"service", service}, {"role", role}}, LatencyBuckets())};
}

void Increment(prometheus::Counter* counter, double by) {
  if (counter != nullptr) counter->Increment(by);
}

void Observe(prometheus::Histogram* histogram, double value) {
  if (histogram != nullptr) histogram->Observe(value);
}

}  // namespace cogo::metrics
