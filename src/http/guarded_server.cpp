#include "http/guarded_server.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace cogo::http {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct RequestState {
  Clock::time_point start = Clock::now();
  CutOff cut_off = CutOff::kNone;
};

thread_local RequestState* current = nullptr;

bool Poll(socket_t sock, short events, milliseconds wait) {
  pollfd fd{sock, events, 0};
  for (;;) {
    const int n = ::poll(&fd, 1, static_cast<int>(std::max<int64_t>(wait.count(), 0)));
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

void Address(socket_t sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  const int rc = peer ? getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len)
                      : getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return;
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof(host), service,
                  sizeof(service), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::atoi(service);
  }
}

// A buffered socket stream. Reads made while a request is being read share its deadline and
// the header byte budget; writes are bounded per call.
class BoundedStream final : public httplib::Stream {
 public:
  BoundedStream(socket_t sock, const ConnectionLimits& limits) : sock_(sock), limits_(limits) {}

  // Waits up to the idle timeout for the next request's first byte; false when none comes or
  // `stopping` turns true (checked every 100 ms so a drain is prompt).
  template <typename Stopping>
  bool AwaitRequest(Stopping stopping) {
    if (begin_ < end_) return true;
    const auto until = Clock::now() + limits_.idle_timeout;
    while (!stopping()) {
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now());
      if (left.count() <= 0) return false;
      if (Poll(sock_, POLLIN, std::min(left, milliseconds(100)))) return true;
    }
    return false;
  }

  void BeginRequest() {
    state_ = RequestState{};
    deadline_ = state_.start + limits_.request_timeout;
    in_headers_ = true;
    header_bytes_ = 0;
    line_ends_ = 0;
  }
  RequestState& state() { return state_; }

  bool is_readable() const override { return begin_ < end_ || Poll(sock_, POLLIN, ReadWait()); }
  bool is_writable() const override { return Poll(sock_, POLLOUT, limits_.write_timeout); }

  ssize_t read(char* ptr, size_t size) override {
    if (begin_ == end_) {
      const ssize_t filled = Fill();
      if (filled <= 0) return filled;
    }
    size_t n = std::min(size, end_ - begin_);
    if (in_headers_) {
      // httplib reads the header block a byte at a time; stop counting at the blank line.
      for (size_t i = 0; i < n; ++i) {
        const char c = buffer_[begin_ + i];
        if (c == '\n') {
          if (++line_ends_ == 2) {
            in_headers_ = false;
            n = i + 1;
            break;
          }
        } else if (c != '\r') {
          line_ends_ = 0;
        }
      }
      header_bytes_ += n;
      if (header_bytes_ > limits_.max_header_bytes) {
        state_.cut_off = CutOff::kHeadersTooLarge;
        return -1;
      }
    }
    std::copy_n(buffer_ + begin_, n, ptr);
    begin_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!Poll(sock_, POLLOUT, limits_.write_timeout)) return -1;
    for (;;) {
      const ssize_t n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      return n;
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { Address(sock_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { Address(sock_, false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  // Rounded up, so a wait that ends at the deadline ends past it.
  milliseconds ReadWait() const {
    const auto left = std::chrono::ceil<milliseconds>(deadline_ - Clock::now());
    return std::max(milliseconds(0), std::min(left, limits_.read_timeout));
  }

  // A read that waits in vain (the deadline passed, or no byte for read_timeout) ends the
  // request: httplib answers 400, JsonService turns it into 408, the connection is closed.
  // Returns what recv did: bytes buffered, 0 at the end of the stream, -1 on an error.
  ssize_t Fill() {
    if (Clock::now() >= deadline_ || !Poll(sock_, POLLIN, ReadWait())) {
      state_.cut_off = CutOff::kTimedOut;
      return -1;
    }
    ssize_t n;
    do {
      n = ::recv(sock_, buffer_, sizeof(buffer_), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return n;
    begin_ = 0;
    end_ = static_cast<size_t>(n);
    return n;
  }

  socket_t sock_;
  const ConnectionLimits& limits_;
  RequestState state_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool in_headers_ = true;
  size_t header_bytes_ = 0;
  int line_ends_ = 0;
  char buffer_[4096];
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace

CutOff CurrentCutOff() { return current != nullptr ? current->cut_off : CutOff::kNone; }

Clock::time_point CurrentRequestStart() { return current != nullptr ? current->start : Clock::now(); }

bool GuardedServer::process_and_close_socket(socket_t sock) {
  BoundedStream stream(sock, limits_);
  auto stopping = [this] { return svr_sock_ == INVALID_SOCKET; };
  bool ok = true;
  for (size_t served = 0; served < limits_.keep_alive_max_requests; ++served) {
    if (!stream.AwaitRequest(stopping)) break;
    stream.BeginRequest();
    current = &stream.state();
    bool closed = false;
    const bool last = served + 1 == limits_.keep_alive_max_requests || stopping();
    ok = process_request(stream, last, closed, nullptr);
    const bool cut_off = stream.state().cut_off != CutOff::kNone;
    current = nullptr;
    if (!ok || closed || cut_off) break;
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace cogo::http
