#include "cogo/base/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace cogo::base {
namespace {

int MakeEventFd(bool semaphore) {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | (semaphore ? EFD_SEMAPHORE : 0));
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

}  // namespace

EventFd::EventFd(bool semaphore) : fd_(MakeEventFd(semaphore)) {}

EventFd::~EventFd() { ::close(fd_); }

// Only a counter at its maximum refuses a write (EAGAIN), and that one is readable already.
void EventFd::Signal() {
  const uint64_t one = 1;
  while (::write(fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

// EAGAIN: nothing was signalled.
void EventFd::Take() {
  uint64_t count = 0;
  while (::read(fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
}

}  // namespace cogo::base
