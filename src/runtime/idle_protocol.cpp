#include "cogo/runtime/idle_protocol.h"

#include <algorithm>

#include "cogo/runtime/claim_pacing.h"

namespace cogo::runtime {
namespace {

// How long an announced worker with nothing more to claim waits for a wake-up. A worker another
// sentinel covers looks again after kCoveredLook at most. None waits past the moment the next
// delayed message falls due: nobody announces that one when it does.
std::chrono::milliseconds IdleWait(IdleState::Idle idle, const IdleEvent& event, bool notify,
                                   std::chrono::milliseconds poll) {
  using std::chrono::milliseconds;
  const bool covered = notify && idle != IdleState::Idle::sentinel;
  milliseconds wait = covered ? std::min(poll, kCoveredLook) : poll;
  if (event.next_due) wait = std::min(wait, std::max(*event.next_due, milliseconds(1)));
  return wait;
}

}  // namespace

IdleStep Next(const IdleState& state, const IdleEvent& event, bool notify,
              std::chrono::milliseconds poll) {
  using std::chrono::milliseconds;
  using Idle = IdleState::Idle;
  IdleStep step{state, {}};
  IdleState& s = step.state;
  IdleAction& a = step.action;
  if (event.kind == IdleEvent::Kind::announced) {
    if (event.result == Announced::busy) {
      // Producers are mid-commit: nothing is held; look again after a short, growing pause.
      const milliseconds cap = std::max(milliseconds(1), std::min(poll, kBusyLook));
      s.backoff = std::min(std::max(s.backoff * 2, milliseconds(1)), cap);
      a.wait = s.backoff;
      return step;
    }
    s.idle = event.result == Announced::sentinel  ? Idle::sentinel
             : event.result == Announced::covered ? Idle::covered
                                                  : Idle::standby;
    s.just_announced = true;  // look once more: work committed before the locks was not announced
    s.backoff = milliseconds(0);
    return step;
  }
  if (event.found > 0) {
    // An announced worker stays so over a short batch: at a trickle it waits again, with no
    // round trips to give the locks back and take them anew. A full batch, or work found again
    // right after (kFoundAgainWithin), means the route is busy: producers must stop paying for
    // a NOTIFY per message.
    const bool emptied_queue = event.found < event.wanted;
    const bool found_again = s.found_work && event.sent - s.found_at < kFoundAgainWithin;
    if (s.idle != Idle::no && (!emptied_queue || found_again)) {
      a.leave_idle = s.idle != Idle::standby;
      s.idle = Idle::no;
    }
    s.found_work = true;
    s.found_at = event.returned;
    s.just_announced = false;
    s.backoff = milliseconds(0);
    if (s.idle == Idle::sentinel) {
      // Still the sentinel, and the claim took all there was: whatever comes next is announced
      // (a NOTIFY), so it waits for that. Claiming again after a gather pause would cost, at a
      // trickle, a claim that finds nothing after every message. A covered worker looks again:
      // its sentinel may be gone, and the empty look announces it in its place.
      s.gather = milliseconds(0);
      a.wait = IdleWait(s.idle, event, notify, poll);
      return step;
    }
    // After a short claim, let work gather, cut short by a wake-up.
    s.gather = NextGatherPause(s.gather, event.found, event.wanted);
    a.wait = s.gather;
    return step;
  }
  s.found_work = false;
  s.gather = milliseconds(0);
  if (!notify || s.idle == Idle::sentinel || s.just_announced) {
    // Polling only, or already announced: wait for a wake-up or the poll.
    s.just_announced = false;
    a.wait = IdleWait(s.idle, event, notify, poll);
    return step;
  }
  a.announce = true;
  return step;
}

}  // namespace cogo::runtime
