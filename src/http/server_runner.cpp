#include "http/server_runner.h"

#include <stdexcept>

namespace cogo::http {

int ServerRunner::Start(const std::string& host, int port) {
  int bound = port;
  if (port == 0) {
    bound = server_.bind_to_any_port(host);
    if (bound < 0) throw std::runtime_error("cannot bind " + host + ":0");
  } else if (!server_.bind_to_port(host, port)) {
    throw std::runtime_error("cannot bind " + host + ":" + std::to_string(port) +
                             " (in use, or not permitted)");
  }
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  return bound;
}

void ServerRunner::Stop() {
  if (!thread_.joinable()) return;
  server_.stop();
  thread_.join();
}

}  // namespace cogo::http
