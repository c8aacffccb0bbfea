#include "http/guarded_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "cogo/base/event_fd.h"

namespace cogo::http {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct RequestState {
  Clock::time_point start = Clock::now();
  CutOff cut_off = CutOff::kNone;
};

thread_local RequestState* current = nullptr;

// Rounded up, so a wait that ends at `until` ends past it.
milliseconds Until(Clock::time_point until) {
  return std::max(milliseconds(0), std::chrono::ceil<milliseconds>(until - Clock::now()));
}

void Close(socket_t sock) {
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
}

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

  enum class Next { kRequest, kPark, kClose };

  // Waits until `idle_until` for the next request's first byte (kRequest), unless a connection
  // waits for a pool thread meanwhile (`waiting_fd` readable: kPark). kClose when the idle time
  // passes or `stopping` turns true (checked every 100 ms so a drain is prompt).
  template <typename Stopping>
  Next AwaitRequest(Stopping stopping, int waiting_fd, Clock::time_point idle_until) {
    if (begin_ < end_) return Next::kRequest;
    while (!stopping()) {
      const auto left = Until(idle_until);
      if (left.count() <= 0) return Next::kClose;
      pollfd fds[2] = {{sock_, POLLIN, 0}, {waiting_fd, POLLIN, 0}};
      const int n = ::poll(fds, 2, static_cast<int>(std::min(left, milliseconds(100)).count()));
      if (n < 0 && errno != EINTR) return Next::kClose;
      if (n <= 0) continue;
      if (fds[0].revents != 0) return Next::kRequest;
      if (fds[1].revents != 0) return Next::kPark;
    }
    return Next::kClose;
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

// The listen loop's task queue: httplib's ThreadPool, a count of the connections waiting for one
// of its threads (a semaphore base::EventFd, readable while any waits), and the parking thread,
// which polls the parked connections and queues each again when its next request arrives.
class GuardedServer::Pool final : public httplib::TaskQueue {
 public:
  Pool(GuardedServer& server, size_t threads)
      : server_(server),
        threads_(threads),
        waiting_(true),
        parker_([this] { ParkLoop(); }) {}

  ~Pool() override { server_.pool_ = nullptr; }

  void enqueue(std::function<void()> fn) override {
    waiting_.Signal();
    threads_.enqueue([this, fn = std::move(fn)] {
      waiting_.Take();
      fn();
    });
  }

  // The listen loop ended: parked connections are closed, then queued ones run (and see the
  // server stopping) and the threads are joined.
  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.Signal();
    parker_.join();
    threads_.shutdown();
  }

  [[nodiscard]] int waiting_fd() const { return waiting_.fd(); }

  void Park(const Connection& c) {
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        parked_.push_back(c);
        wake_.Signal();
        return;
      }
    }
    Close(c.sock);
  }

 private:
  void ParkLoop() {
    std::vector<Connection> watched;
    std::vector<pollfd> fds;
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) {
          for (const auto& c : parked_) Close(c.sock);
          parked_.clear();
          return;
        }
        watched = parked_;
      }
      fds.assign(1, pollfd{wake_.fd(), POLLIN, 0});
      auto until = Clock::time_point::max();
      for (const auto& c : watched) {
        fds.push_back(pollfd{c.sock, POLLIN, 0});
        until = std::min(until, c.idle_until);
      }
      const int wait = until == Clock::time_point::max() ? -1 : static_cast<int>(Until(until).count());
      if (::poll(fds.data(), fds.size(), wait) < 0 && errno != EINTR) continue;
      if (fds[0].revents != 0) wake_.Take();
      const auto now = Clock::now();
      std::vector<Connection> ready;
      {
        std::lock_guard lock(mu_);
        for (size_t i = 0; i < watched.size(); ++i) {
          const bool readable = fds[i + 1].revents != 0;
          if (!readable && now < watched[i].idle_until) continue;
          std::erase_if(parked_, [sock = watched[i].sock](const Connection& c) { return c.sock == sock; });
          if (readable) ready.push_back(watched[i]);
          else Close(watched[i].sock);
        }
      }
      for (const auto& c : ready) enqueue([this, c] { server_.Serve(c); });
    }
  }

  GuardedServer& server_;
  httplib::ThreadPool threads_;
  base::EventFd waiting_;  // a semaphore: one count per connection queued for a thread
  base::EventFd wake_;     // the parking thread looks again: a connection parked, or shutdown
  std::mutex mu_;
  std::vector<Connection> parked_;  // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  std::thread parker_;              // last: starts once the rest is built
};

GuardedServer::GuardedServer(ConnectionLimits limits, size_t threads) : limits_(limits) {
  new_task_queue = [this, threads] {
    auto* pool = new Pool(*this, threads);
    pool_ = pool;
    return pool;
  };
}

CutOff CurrentCutOff() { return current != nullptr ? current->cut_off : CutOff::kNone; }

Clock::time_point CurrentRequestStart() { return current != nullptr ? current->start : Clock::now(); }

bool GuardedServer::process_and_close_socket(socket_t sock) {
  const int one = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  Serve({sock, 0, Clock::now() + limits_.idle_timeout});
  return true;
}

void GuardedServer::Serve(Connection c) {
  BoundedStream stream(c.sock, limits_);
  auto stopping = [this] { return svr_sock_ == INVALID_SOCKET; };
  Pool* pool = pool_;
  for (; c.served < limits_.keep_alive_max_requests; ++c.served) {
    const auto next = stream.AwaitRequest(stopping, pool->waiting_fd(), c.idle_until);
    if (next == BoundedStream::Next::kPark) {
      pool->Park(c);  // nothing is buffered: the stream holds no state worth keeping
      return;
    }
    if (next == BoundedStream::Next::kClose) break;
    stream.BeginRequest();
    current = &stream.state();
    bool closed = false;
    const bool last = c.served + 1 == limits_.keep_alive_max_requests || stopping();
    const bool ok = process_request(stream, last, closed, nullptr);
    const bool cut_off = stream.state().cut_off != CutOff::kNone;
    current = nullptr;
    if (!ok || closed || cut_off) break;
    c.idle_until = Clock::now() + limits_.idle_timeout;
  }
  Close(c.sock);
}

}  // namespace cogo::http
