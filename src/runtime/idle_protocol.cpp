#include "cogo/runtime/idle_protocol.h"

#include <algorithm>

#include "cogo/runtime/claim_pacing.h"

namespace cogo::runtime {

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
    // An announced worker stays so over one short batch: at a trickle the next claim finds
    // nothing and it waits again, with no round trips to give the locks back and take them
    // anew. A full batch, or work found twice in a row, means the route is busy: producers must
    // stop paying for a NOTIFY per message.
    const bool emptied_queue = event.found < event.wanted;
    if (s.idle != Idle::no && (!emptied_queue || s.found_work)) {
      a.leave_idle = s.idle != Idle::standby;
      s.idle = Idle::no;
    }
    s.found_work = true;
    s.just_announced = false;
    s.backoff = milliseconds(0);
    // After a short claim, let work gather, cut short by a wake-up.
    s.gather = NextGatherPause(s.gather, event.found, event.wanted);
    a.wait = s.gather;
    return step;
  }
  s.found_work = false;
  s.gather = milliseconds(0);
  if (!notify || s.idle == Idle::sentinel || s.just_announced) {
    // Polling only, or already announced: wait for a wake-up or the poll. A worker another
    // sentinel covers looks again after kCoveredLook at most. None waits past the moment the
    // next delayed message falls due: nobody announces that one when it does.
    s.just_announced = false;
    const bool covered = notify && s.idle != Idle::sentinel;
    a.wait = covered ? std::min(poll, kCoveredLook) : poll;
    if (event.next_due) a.wait = std::min(a.wait, std::max(*event.next_due, milliseconds(1)));
    return step;
  }
  a.announce = true;
  return step;
}

}  // namespace cogo::runtime
