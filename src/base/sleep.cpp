#include "cogo/base/sleep.h"

#include <condition_variable>
#include <mutex>

namespace cogo::base {

bool SleepFor(std::stop_token stop, std::chrono::milliseconds duration) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_for(lock, stop, duration, [] { return false; });
  return !stop.stop_requested();
}

}  // namespace cogo::base
