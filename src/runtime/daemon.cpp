#include "cogo/runtime/daemon.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "cogo/db/connection.h"
#include "cogo/log/logging.h"
#include "cogo/runtime/bus_metrics.h"
#include "cogo/wake/wake_hub.h"

namespace cogo::runtime {
namespace {

// systemd Type=notify support without linking libsystemd: one datagram to $NOTIFY_SOCKET.
void SdNotify(const char* state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@')) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sendto(fd, state, std::strlen(state), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::strlen(path)));
  close(fd);
}

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1}) sigaddset(&set, s);
  return set;
}

}  // namespace

void AddCommonOptions(CLI::App& app, CommonOptions& o) {
  app.add_option("--database-url", o.database_url, "PostgreSQL connection URL")
      ->envname("COGO_DATABASE_URL")
      ->capture_default_str();
  app.add_option("--log-format", o.log_format, "text or json")
      ->envname("COGO_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
      ->envname("COGO_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
}

int RunDaemon(int argc, char** argv, const DaemonSpec& spec) {
  // Before any thread exists, so every thread inherits the mask and only sigwait sees these.
  sigset_t handled = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  signal(SIGPIPE, SIG_IGN);

  CommonOptions options;
  CLI::App app(spec.description, spec.name);
  app.set_config("--config", "", "TOML config file (unknown keys are an error)");
  app.allow_config_extras(false);
  AddCommonOptions(app, options);
  app.add_option("--metrics-listen", options.metrics_listen,
                 "host:port for Prometheus /metrics (empty: off)")
      ->envname("COGO_METRICS_LISTEN");
  app.add_option("--notify", options.notify, "LISTEN for wake-ups (false: poll only)")
      ->envname("COGO_NOTIFY")
      ->capture_default_str();
  app.add_option("--poll-ms", options.poll_ms, "claim at least this often when idle")
      ->envname("COGO_POLL_MS")
      ->check(CLI::Range(10, 3600000))
      ->capture_default_str();
  app.add_option("--drain-grace-ms", options.drain_grace_ms,
                 "how long running handlers may finish after SIGTERM")
      ->envname("COGO_DRAIN_GRACE_MS")
      ->check(CLI::Range(0, 3600000))
      ->capture_default_str();
  bool print_config = false;
  app.add_flag("--print-config", print_config, "print the effective configuration and exit")
      ->configurable(false);
  if (spec.add_options) spec.add_options(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (print_config) {
    std::cout << db::RedactPasswords(app.config_to_str(true, false));
    return 0;
  }

  log::Setup(log::ParseFormat(options.log_format), options.log_level);
  auto logger = log::Get(spec.name);
  try {
    // The Exposer holds only a weak_ptr to what it collects: this shared_ptr must live as long
    // as it does (a temporary expired at once, and /metrics served no cogo metric at all).
    const auto registry_ptr = std::make_shared<prometheus::Registry>();
    prometheus::Registry& registry = *registry_ptr;
    metrics::BusMetrics bus_metrics(registry);
    std::unique_ptr<prometheus::Exposer> exposer;
    std::string metrics_url = "off";
    if (!options.metrics_listen.empty()) {
      exposer = std::make_unique<prometheus::Exposer>(options.metrics_listen);
      exposer->RegisterCollectable(registry_ptr);
      // The bound port, not the asked one: with port 0 the kernel picks a free one and whoever
      // started the daemon reads it here.
      metrics_url = "http://" + options.metrics_listen.substr(0, options.metrics_listen.rfind(':')) + ":" +
                    std::to_string(exposer->GetListeningPorts().front()) + "/metrics";
    }
    std::unique_ptr<wake::WakeHub> wake;
    if (options.notify) {
      wake = std::make_unique<wake::WakeHub>(wake::WakeHubOptions{options.database_url},
                                             log::Get(spec.name + ".wake"));
      wake->Start();
    }
    DaemonContext context{options, logger, wake.get(), bus_metrics, registry};
    auto components = spec.build(context);
    for (auto& c : components) c->Start();
    logger->info("{} up (pid {}, notify {}, poll {} ms, metrics {})", spec.name, getpid(),
                 options.notify ? "on" : "off", options.poll_ms, metrics_url);
    // Ready once every component serves (a worker connected and waiting for work), not merely
    // started: systemd's start, and whoever reads the log, wait for it.
    std::jthread announcer([&](std::stop_token stop) {
      for (const auto& c : components) {
        while (!c->WaitReady(std::chrono::milliseconds(200))) {
          if (stop.stop_requested() || !c->FatalError().empty()) return;  // the signal loop stops it
        }
      }
      logger->info("{} ready", spec.name);
      SdNotify("READY=1");
    });

    int exit_code = 0;
    std::jthread drainer;
    auto begin_drain = [&](const char* why) {
      announcer.request_stop();
      logger->info("{}: draining (a second SIGTERM exits at once)", why);
      SdNotify("STOPPING=1");
      drainer = std::jthread([&] {
        for (auto it = components.rbegin(); it != components.rend(); ++it) (*it)->Drain();
        kill(getpid(), SIGUSR1);  // tell the signal loop the drain finished
      });
    };
    while (true) {
      timespec tick{1, 0};
      const int sig = sigtimedwait(&handled, nullptr, &tick);
      if (sig == SIGUSR1) break;
      if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
        if (drainer.joinable()) {
          logger->warn("second signal: exiting without finishing the drain");
          logger->flush();
          _exit(1);
        }
        begin_drain(strsignal(sig));
      } else if (sig == SIGHUP) {
        logger->info("SIGHUP: logs go to stderr; nothing to reopen");
      } else if (!drainer.joinable()) {
        for (const auto& c : components) {
          if (auto error = c->FatalError(); !error.empty()) {
            logger->error("stopping: {}", error);
            exit_code = 1;
            begin_drain("fatal error");
            break;
          }
        }
      }
    }
    if (drainer.joinable()) drainer.join();
    announcer.request_stop();
    if (announcer.joinable()) announcer.join();
    components.clear();
    if (wake) wake->Stop();
    logger->info("{} stopped", spec.name);
    return exit_code;
  } catch (const std::exception& e) {
    logger->critical("{} failed: {}", spec.name, e.what());
    return 1;
  }
}

}  // namespace cogo::runtime
