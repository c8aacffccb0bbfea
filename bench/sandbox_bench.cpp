// cogo-sandbox-bench: the start-up cost of the build-test sandbox per command. Runs `true` N
// times through buildtest::RunSandboxed (bwrap, namespaces, rlimits, uid drop) and N times as a
// plain fork + exec of `/bin/sh -c true`, interleaved, and prints p50/p90/p99 of both and of
// the difference of the medians.
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "cogo/buildtest/sandbox.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

double PlainShell() {
  const auto t0 = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", "true", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return Ms(Clock::now() - t0);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 200;
  CLI::App app{"cogo-sandbox-bench: sandbox start-up cost per command"};
  app.add_option("--runs", runs, "commands of each kind")->check(CLI::Range(10, 100000))->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  cogo::buildtest::SandboxOptions options;
  std::printf("sandbox: %s\n", cogo::buildtest::ProbeSandbox(options).c_str());
  std::string dir = (std::filesystem::temp_directory_path() / "cogo-sandbox-bench.XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) return 1;
  if (geteuid() == 0 && chown(dir.c_str(), options.uid, options.gid) != 0) return 1;
  std::vector<double> sandboxed, plain;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    const auto run = cogo::buildtest::RunSandboxed("true", dir, options, {});
    sandboxed.push_back(Ms(Clock::now() - t0));
    if (run.exit_code != 0) {
      std::fprintf(stderr, "sandboxed true exited %d: %s\n", run.exit_code, run.output.c_str());
      return 1;
    }
    plain.push_back(PlainShell());
  }
  std::filesystem::remove_all(dir);
  for (const auto& [name, v] : {std::pair{"sandboxed sh -c true", sandboxed}, std::pair{"plain sh -c true", plain}}) {
    std::printf("%-22s runs=%d p50=%.2f ms p90=%.2f ms p99=%.2f ms\n", name, runs, Quantile(v, 0.5), Quantile(v, 0.9),
                Quantile(v, 0.99));
  }
  std::printf("sandbox start-up (p50 difference): %.2f ms per command\n", Quantile(sandboxed, 0.5) - Quantile(plain, 0.5));
  return 0;
}
