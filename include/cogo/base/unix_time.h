// The wall clock in whole seconds since the Unix epoch: the unit of JWT times (iat, nbf, exp) and
// of the stamps a request carries for people. No deadline is judged by it (base/clock.h: the
// process's steady clock and the database's). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace cogo::base {

[[nodiscard]] inline int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace cogo::base
