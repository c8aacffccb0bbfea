// Private: an httplib::Server whose connections are read through a stream that bounds each
// request — the request line, headers and body must arrive within `request_timeout`, the header
// block within `max_header_bytes` — so a client that dribbles bytes (slowloris) holds a pool
// thread for at most `request_timeout` (+ one read wait) instead of forever. httplib 0.11's own
// timeouts are per read and reset by every byte. A keep-alive connection waiting for its next
// request keeps its pool thread only while no other connection waits for one; otherwise it is
// parked (one thread polls every parked connection) and comes back to the pool when its next
// request arrives, or is closed after `idle_timeout`. Accepted sockets get TCP_NODELAY: a
// response is written in several sends, and Nagle's algorithm would hold the last one until the
// client's delayed ACK. One GuardedServer per JsonService; each request is served by one pool
// thread, which the Current* accessors describe.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>

namespace cogo::http {

struct ConnectionLimits {
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds read_timeout{5000};   // one wait for bytes
  std::chrono::milliseconds write_timeout{5000};  // one wait to send
  std::chrono::milliseconds idle_timeout{5000};   // between keep-alive requests
  size_t max_header_bytes = 16 << 10;
  size_t keep_alive_max_requests = 100;
};

// Why reading the current request stopped early: httplib then answers 400, which JsonService
// turns into 431 or 408.
enum class CutOff { kNone, kHeadersTooLarge, kTimedOut };

// On the thread serving a connection: the cut-off of its current request and when it began.
[[nodiscard]] CutOff CurrentCutOff();
[[nodiscard]] std::chrono::steady_clock::time_point CurrentRequestStart();

class GuardedServer final : public httplib::Server {
 public:
  // `threads` serve requests (the pool httplib's listen loop hands connections to).
  GuardedServer(ConnectionLimits limits, size_t threads);

 private:
  class Pool;
  struct Connection {
    socket_t sock;
    size_t served;  // requests served on it so far
    std::chrono::steady_clock::time_point idle_until;
  };

  // Replaces httplib's keep-alive loop (same shape) to read through the bounded stream.
  bool process_and_close_socket(socket_t sock) override;
  // Serves `c` until it closes, or parks it when it idles while another connection waits.
  void Serve(Connection c);

  ConnectionLimits limits_;
  std::atomic<Pool*> pool_{nullptr};  // set by new_task_queue; lives while the listen loop runs
};

}  // namespace cogo::http
