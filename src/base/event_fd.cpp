#include "cogo/base/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace cogo::base {
namespace {

int MakeEventFd() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

}  // namespace

EventFd::EventFd() : fd_(MakeEventFd()) {}

EventFd::~EventFd() { ::close(fd_); }

void EventFd::Signal() {
  const uint64_t one = 1;
  // Only a counter at its maximum refuses the write, and that one is readable already.
  [[maybe_unused]] const ssize_t n = ::write(fd_, &one, sizeof(one));
}

void EventFd::Clear() {
  uint64_t count = 0;
  [[maybe_unused]] const ssize_t n = ::read(fd_, &count, sizeof(count));  // EAGAIN: not signalled
}

}  // namespace cogo::base
