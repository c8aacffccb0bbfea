// The claimer's idle protocol (docs/architecture.md, "Wake-ups without a NOTIFY per message") as
// a pure state machine: after each claim, and after each idle announcement, Next says what the
// claimer does next (give the wake locks back, announce itself idle, wait). The claim loop only
// performs the actions; the decisions are here, tested from the table in
// tests/unit/idle_protocol_test.cpp. Pure functions: thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

namespace cogo::runtime {

// How long a worker whose shards another sentinel covers waits before it announces again (a
// sentinel that dies frees its locks without a NOTIFY), and the longest pause of one that found
// producers mid-commit.
inline constexpr std::chrono::milliseconds kCoveredLook{250};
inline constexpr std::chrono::milliseconds kBusyLook{16};
// Work found by a claim sent this soon after the last one that found work returned is work found
// twice in a row (the route is busy): the gather pause after which a sentinel used to look again
// after each short claim. Measured from the return, so a slow round trip does not hide it.
inline constexpr std::chrono::milliseconds kFoundAgainWithin{1};

// What Bus::AnnounceIdle answered (bus::Bus::IdleResult, kept apart so this stays pure).
enum class Announced { sentinel, covered, standby, busy };

struct IdleState {
  // Where the worker stands in the protocol: no (claiming), or announced as one of the three.
  enum class Idle { no, standby, covered, sentinel } idle = Idle::no;
  bool just_announced = false;  // the next empty claim is the look after announcing
  bool found_work = false;      // the last claim returned messages
  std::chrono::steady_clock::time_point found_at{};  // when that claim returned
  std::chrono::milliseconds backoff{0};  // the pause after finding producers mid-commit
  std::chrono::milliseconds gather{0};   // the pause after a short claim (NextGatherPause)
};

struct IdleEvent {
  enum class Kind { claimed, announced } kind = Kind::claimed;
  std::size_t found = 0;   // claimed: messages the claim returned
  std::size_t wanted = 0;  // claimed: messages it asked for
  Announced result = Announced::sentinel;  // announced: the answer
  // claimed: in how long the route's earliest delayed message falls due, by the database's clock
  // (bus::ClaimResult::next_due); nullopt: none waits.
  std::optional<std::chrono::milliseconds> next_due;
  std::chrono::steady_clock::time_point sent{};      // claimed: when the claim was sent...
  std::chrono::steady_clock::time_point returned{};  // ...and when it returned

  static IdleEvent Claimed(std::size_t found, std::size_t wanted,
                           std::optional<std::chrono::milliseconds> next_due = std::nullopt,
                           std::chrono::steady_clock::time_point sent = {},
                           std::chrono::steady_clock::time_point returned = {}) {
    return {Kind::claimed, found, wanted, Announced::sentinel, next_due, sent, returned};
  }
  static IdleEvent Announce(Announced result) { return {Kind::announced, 0, 0, result, std::nullopt, {}, {}}; }
};

struct IdleAction {
  bool leave_idle = false;  // first give the shards' wake locks back (Bus::LeaveIdle)
  bool announce = false;    // then announce idle (Bus::AnnounceIdle) and feed its answer to Next
  std::chrono::milliseconds wait{0};  // else wait this long (a wake-up cuts it short); 0: claim
};

struct IdleStep {
  IdleState state;
  IdleAction action;
};

// `notify`: a WakeHub delivers this worker's wake-ups (without one nobody would hear a NOTIFY,
// so the worker only polls); `poll`: the longest idle wait.
[[nodiscard]] IdleStep Next(const IdleState& state, const IdleEvent& event, bool notify,
                            std::chrono::milliseconds poll);

// On stop: a sentinel or covered worker gives its wake locks back, so another takes over at once.
[[nodiscard]] inline bool LeavesOnStop(const IdleState& state) {
  return state.idle == IdleState::Idle::sentinel || state.idle == IdleState::Idle::covered;
}

}  // namespace cogo::runtime
