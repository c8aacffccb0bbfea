// The health listener: /healthz and /readyz for a daemon that serves no HTTP of its own (the
// worker and ops daemons), so a supervisor (a compose healthcheck, a load balancer, a person
// with curl) can ask whether it is up and doing its work. It is a JsonService without routes:
// /readyz is the skeleton's (database reachable, migrations applied, 503 `workers_not_ready`
// while its workers_ready says no), and workers_ready is every other component of the daemon
// ready (Component::WaitReady: a worker connected, registered and waiting for work; no longer
// once it drains) and none failed. Off unless --health-port (COGO_HEALTH_PORT) is given; on
// loopback unless --health-host (COGO_HEALTH_HOST) says more.
#pragma once

#include <string>
#include <vector>

#include "cogo/runtime/daemon.h"

namespace CLI {
class App;
}

namespace cogo::http {

struct HealthListenerOptions {
  std::string host = "127.0.0.1";
  int port = -1;  // -1 = no listener, 0 = any free port (logged)
};

// --health-host, --health-port.
void AddHealthListenerOptions(CLI::App& app, HealthListenerOptions& options);

// Whether every one of `components` (not owned; they outlive every probe) is ready now and none
// has failed. Thread-safe as the components are.
[[nodiscard]] bool ComponentsReady(const std::vector<const runtime::Component*>& components);

// `spec` with the listener's flags, and the listener put before the components `spec` builds:
// it starts first (answering 503 until they are ready) and drains last (answering 503 while
// they drain).
[[nodiscard]] runtime::DaemonSpec WithHealthListener(runtime::DaemonSpec spec);

}  // namespace cogo::http
