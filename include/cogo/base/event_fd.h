// EventFd: a file descriptor that other threads make readable, so a thread that waits in poll()
// on sockets (the LISTEN thread on its connection, the HTTP server's parking thread on parked
// keep-alive connections) can also be woken from inside the process. A semaphore one counts:
// each Take consumes one Signal, and it stays readable while any is left (the HTTP server's
// count of connections waiting for a thread). Thread-safe.
#pragma once

namespace cogo::base {

class EventFd {
 public:
  explicit EventFd(bool semaphore = false);  // throws std::system_error when the kernel refuses one
  ~EventFd();
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;

  void Signal();  // readable from now until taken
  void Take();    // consumes every signal (a semaphore: one); never blocks
  [[nodiscard]] int fd() const { return fd_; }

 private:
  const int fd_;
};

}  // namespace cogo::base
