#include "cogo/runtime/worker_component.h"

#include <CLI/CLI.hpp>

#include "cogo/bus/keys.h"
#include "cogo/log/logging.h"

namespace cogo::runtime {
namespace {

class WorkerComponent final : public Component {
 public:
  WorkerComponent(WorkerOptions options, Handler handler, DaemonContext& context)
      : worker_(std::move(options), std::move(handler), context.wake,
                log::Get(context.logger->name() + ".worker"), &context.metrics) {}
  void Start() override { worker_.Start(); }
  void Drain() override { worker_.Drain(); }
  std::string FatalError() const override { return worker_.fatal_error(); }
  bool WaitReady(std::chrono::milliseconds timeout) const override { return worker_.WaitReady(timeout); }

 private:
  Worker worker_;
};

}  // namespace

void AddWorkerOptions(CLI::App& app, WorkerOptions& o, bool with_route) {
  if (with_route) {
    auto route_name = [](const char* what) {
      return CLI::Validator(
          [what](std::string& name) {
            return bus::ValidRouteName(name) ? std::string() : bus::DescribeRouteNameRule(what, name);
          },
          "ROUTE_NAME");
    };
    app.add_option("--service", o.service, "route service")->required()->check(route_name("service"));
    app.add_option("--role", o.role, "route role")->required()->check(route_name("role"));
  }
  app.add_option("--shards", o.shards, "shards to consume")->delimiter(',')->capture_default_str();
  app.add_option("--concurrency", o.concurrency, "handler threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "most messages per claim")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--worker-id", o.worker_id, "lease owner name (default host-pid-route-random)");
  auto ms = [&](const char* name, std::chrono::milliseconds& value, const char* help) {
    app.add_option_function<int64_t>(
           name, [&value](int64_t v) { value = std::chrono::milliseconds(v); }, help)
        ->check(CLI::Range(int64_t{1}, int64_t{86400000}));
  };
  ms("--lease-ms", o.lease, "lease length (default 30000)");
  ms("--heartbeat-ms", o.heartbeat, "lease renewal interval (default 10000)");
}

std::unique_ptr<Component> MakeWorkerComponent(WorkerOptions options, Handler handler,
                                               DaemonContext& context) {
  options.database_url = context.options.database_url;
  options.poll = std::chrono::milliseconds(context.options.poll_ms);
  options.drain_grace = std::chrono::milliseconds(context.options.drain_grace_ms);
  return std::make_unique<WorkerComponent>(std::move(options), std::move(handler), context);
}

DaemonSpec WorkerDaemon(WorkerDaemonSpec spec) {
  return {spec.name, spec.description,
          [spec](CLI::App& app) {
            AddWorkerOptions(app, spec.worker, spec.with_route);
            if (spec.add_options) spec.add_options(app);
          },
          [spec](DaemonContext& context) {
            Handler handler = spec.make_handler(context);  // first: it may adjust the worker's options
            std::vector<std::unique_ptr<Component>> components;
            components.push_back(MakeWorkerComponent(spec.worker, std::move(handler), context));
            return components;
          }};
}

}  // namespace cogo::runtime
