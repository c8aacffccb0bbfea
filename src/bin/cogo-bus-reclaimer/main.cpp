// cogo-bus-reclaimer: on an interval, requeues (or dead-letters) running messages whose lease
// expired and ends queued messages whose assignment TTL passed (docs/operations-executor.md).
#include <CLI/CLI.hpp>

#include "cogo/http/health_listener.h"
#include "cogo/ops/reclaimer.h"

int main(int argc, char** argv) {
  cogo::ops::ReclaimerOptions options;
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener({
      "cogo-bus-reclaimer", "Reclaim expired leases and expire queued work past its TTL",
      [&](CLI::App& app) { cogo::ops::AddReclaimerOptions(app, options); },
      [&](cogo::runtime::DaemonContext& ctx) {
        std::vector<std::unique_ptr<cogo::runtime::Component>> components;
        components.push_back(cogo::ops::MakeReclaimerComponent(options, ctx));
        return components;
      }}));
}
