// EventFd: a file descriptor that other threads make readable, so a thread that waits in poll()
// on a socket (a claimer waiting for its LISTEN connection's notifications) can also be woken
// from inside the process. Thread-safe.
#pragma once

namespace cogo::base {

class EventFd {
 public:
  EventFd();  // throws std::system_error when the kernel refuses one
  ~EventFd();
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;

  void Signal();  // readable from now until Clear
  void Clear();
  [[nodiscard]] int fd() const { return fd_; }

 private:
  const int fd_;
};

}  // namespace cogo::base
