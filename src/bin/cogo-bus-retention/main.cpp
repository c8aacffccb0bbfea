// cogo-bus-retention: on an interval, deletes final messages, old audit events and old usage
// rows in bounded batches (docs/operations-executor.md).
#include <CLI/CLI.hpp>

#include "cogo/http/health_listener.h"
#include "cogo/ops/retention.h"

int main(int argc, char** argv) {
  cogo::ops::RetentionOptions options;
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener({
      "cogo-bus-retention", "Prune finished messages, old events and old usage rows",
      [&](CLI::App& app) { cogo::ops::AddRetentionOptions(app, options, true); },
      [&](cogo::runtime::DaemonContext& ctx) {
        std::vector<std::unique_ptr<cogo::runtime::Component>> components;
        components.push_back(cogo::ops::MakeRetentionComponent(options, ctx));
        return components;
      }}));
}
