// Private: runs an httplib::Server on its own thread — bind (throws when the port is taken),
// listen, stop. One owner; Start and Stop are not concurrent with each other.
#pragma once

#include <httplib.h>

#include <string>
#include <thread>

namespace cogo::http {

class ServerRunner {
 public:
  explicit ServerRunner(httplib::Server& server) : server_(server) {}
  ~ServerRunner() { Stop(); }
  ServerRunner(const ServerRunner&) = delete;
  ServerRunner& operator=(const ServerRunner&) = delete;

  // Binds host:port (port 0: any free port) and starts serving; returns the bound port.
  int Start(const std::string& host, int port);
  void Stop();

 private:
  httplib::Server& server_;
  std::thread thread_;
};

}  // namespace cogo::http
