// How much a worker's claimer claims, and how long it waits after a claim that found work before
// it claims again. Pure decisions, kept apart from the claim loop so they are tested on their own.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>

namespace cogo::runtime {

// The longest pause: under steady load a message waits at most this much longer for its claim.
inline constexpr std::chrono::milliseconds kGatherMax{8};

// `previous`: the last pause (0 after an empty or a full claim); `found` of `wanted` messages.
// A full claim means more is waiting: claim again at once. A short one took everything there
// was, and claiming at once would find only what arrived during one round trip, at the full
// cost of a claim; a pause lets a busy route's work gather into fewer, larger claims. It starts
// at 1 ms and doubles only while claims keep finding three or more messages (the route is busy
// enough to fill them), holds at two and halves at one. A pause that grew whenever a claim found
// anything held a moderate random stream back: at 700 msg/s, p99 dispatch latency went from
// 2.3 ms to 10-17 ms (docs/benchmarks.md, session D).
[[nodiscard]] inline std::chrono::milliseconds NextGatherPause(std::chrono::milliseconds previous,
                                                               std::size_t found, std::size_t wanted) {
  using std::chrono::milliseconds;
  if (found == 0 || found >= wanted) return milliseconds(0);
  if (previous <= milliseconds(0)) return milliseconds(1);
  if (found == 2) return previous;
  const milliseconds next = found >= 3 ? previous * 2 : previous / 2;
  return std::clamp(next, milliseconds(1), kGatherMax);
}

// How many messages the next claim takes (0: wait until a handler or a flush frees more): at most
// a batch and at most `free`, what the worker may still hold (WorkerState::FreeCapacity). While
// messages wait to start (`waiting`) the handlers have work, and while outcomes wait for their
// flush (`unflushed`) the flush's commit will free up to a batch: then a claim waits until half a
// batch is free. A top-up of a few messages costs a whole claim statement and, when its outcomes
// reach the flusher alone, a whole commit (in `cogo-bench drain` every claim of 256 was followed
// by one of 4, a third of all claims). With nothing waiting to start or to be flushed, whatever
// is free is claimed at once, so no handler waits for a claim that could run.
[[nodiscard]] inline int NextClaimSize(int free, int waiting, int unflushed, int batch_size) {
  const int size = std::max(0, std::min(free, batch_size));
  if (waiting == 0 && unflushed == 0) return size;
  return size >= std::max(1, batch_size / 2) ? size : 0;
}

}  // namespace cogo::runtime
