// cogo-build-test-worker: the (code, build-test) worker — edits applied in a fresh workspace,
// build and tests run in a bubblewrap sandbox under rlimits and a timeout, report.json — and the
// (code, promote) worker that commits passing edits to branch cogo/<taskId> (see
// include/cogo/buildtest/worker.h). Refuses to start when the sandbox does not run here.
#include <CLI/CLI.hpp>

#include "cogo/buildtest/worker.h"
#include "cogo/http/health_listener.h"
#include "cogo/runtime/worker_component.h"

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  worker.service = "code";
  worker.role = "build-test";
  worker.concurrency = 2;
  cogo::buildtest::BuildTestOptions options;
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener({
      "cogo-build-test-worker", "sandboxed build and test for code/build-test, and code/promote",
      [&](CLI::App& app) {
        cogo::runtime::AddWorkerOptions(app, worker, false);
        cogo::buildtest::AddBuildTestOptions(app, options);
      },
      [&](cogo::runtime::DaemonContext& ctx) {
        options.sandbox_description = cogo::buildtest::ProbeSandbox(options.sandbox);
        ctx.logger->info("sandbox: {}", options.sandbox_description);
        auto promote = worker;
        promote.role = "promote";
        promote.concurrency = 1;
        std::vector<std::unique_ptr<cogo::runtime::Component>> components;
        components.push_back(cogo::runtime::MakeWorkerComponent(
            worker, cogo::buildtest::MakeBuildTestHandler(options, ctx.logger), ctx));
        components.push_back(cogo::runtime::MakeWorkerComponent(
            promote, cogo::buildtest::MakePromoteHandler(options, ctx.logger), ctx));
        return components;
      }}));
}
