// The claimer's idle protocol, as docs/architecture.md ("Wake-ups without a NOTIFY per message")
// states it: each row is a state, what just happened, and what the claimer does next.
#include "cogo/runtime/idle_protocol.h"

#include <gtest/gtest.h>

#include <vector>

namespace cogo::runtime {
namespace {

using std::chrono::milliseconds;
using Idle = IdleState::Idle;

constexpr milliseconds kPoll{1000};

// When the last claim that found work returned, and a claim sent soon after it or later.
const std::chrono::steady_clock::time_point kFoundAt{std::chrono::seconds(100)};
const std::chrono::steady_clock::time_point kSoonAfter = kFoundAt + kFoundAgainWithin / 2;
const std::chrono::steady_clock::time_point kLater = kFoundAt + milliseconds(10);

IdleState In(Idle idle, bool just_announced = false, bool found_work = false,
             milliseconds backoff = milliseconds(0), milliseconds gather = milliseconds(0)) {
  return {idle, just_announced, found_work, kFoundAt, backoff, gather};
}

TEST(IdleProtocol, TheTableOfTheProtocol) {
  struct Row {
    const char* rule;
    IdleState state;
    IdleEvent event;
    bool notify;
    // expected
    Idle idle;
    bool leave_idle;
    bool announce;
    milliseconds wait;
  };
  const Row rows[] = {
      // 1. An empty claim announces the worker idle; whatever the answer, it claims once more
      //    at once, then waits for a NOTIFY or the poll.
      {"1: empty claim -> announce", In(Idle::no), IdleEvent::Claimed(0, 32), true, Idle::no, false, true, milliseconds(0)},
      {"1: sentinel -> claim once more", In(Idle::no), IdleEvent::Announce(Announced::sentinel), true,
       Idle::sentinel, false, false, milliseconds(0)},
      {"1: covered -> claim once more", In(Idle::no), IdleEvent::Announce(Announced::covered), true,
       Idle::covered, false, false, milliseconds(0)},
      {"1: standby -> claim once more", In(Idle::no), IdleEvent::Announce(Announced::standby), true,
       Idle::standby, false, false, milliseconds(0)},
      {"1: sentinel, the look after announcing is empty -> wait the poll", In(Idle::sentinel, true),
       IdleEvent::Claimed(0, 32), true, Idle::sentinel, false, false, kPoll},
      {"1: a covered worker waits at most 250 ms", In(Idle::covered, true), IdleEvent::Claimed(0, 32), true,
       Idle::covered, false, false, kCoveredLook},
      {"1: ... and then announces itself again", In(Idle::covered), IdleEvent::Claimed(0, 32), true,
       Idle::covered, false, true, milliseconds(0)},
      {"1: a sentinel woken to nothing waits again without announcing", In(Idle::sentinel),
       IdleEvent::Claimed(0, 32), true, Idle::sentinel, false, false, kPoll},
      // 4. Producers mid-commit: hold nothing, look again after 1 ms doubling to 16 ms.
      {"4: busy -> 1 ms", In(Idle::no), IdleEvent::Announce(Announced::busy), true, Idle::no, false, false,
       milliseconds(1)},
      {"4: busy again -> doubles", In(Idle::no, false, false, milliseconds(4)), IdleEvent::Announce(Announced::busy),
       true, Idle::no, false, false, milliseconds(8)},
      {"4: ... up to 16 ms", In(Idle::no, false, false, kBusyLook), IdleEvent::Announce(Announced::busy), true,
       Idle::no, false, false, kBusyLook},
      // 5. A sentinel keeps its locks over a short batch and waits for the next NOTIFY; it gives
      //    them back on a full batch or on work found again right after (kFoundAgainWithin).
      {"5: a short batch keeps the locks and waits", In(Idle::sentinel, true), IdleEvent::Claimed(1, 32, {}, kLater),
       true, Idle::sentinel, false, false, kPoll},
      {"5: ... also after work found a while ago", In(Idle::sentinel, false, true),
       IdleEvent::Claimed(1, 32, {}, kLater), true, Idle::sentinel, false, false, kPoll},
      {"5: a covered worker looks again, and announces if that finds nothing", In(Idle::covered, false, true),
       IdleEvent::Claimed(1, 32, {}, kLater), true, Idle::covered, false, false, milliseconds(1)},
      {"5: work found again is measured from the last claim's return", In(Idle::sentinel, false, true),
       IdleEvent::Claimed(1, 32, {}, kSoonAfter, kLater), true, Idle::no, true, false, milliseconds(1)},
      {"5: a full batch gives them back", In(Idle::sentinel, true), IdleEvent::Claimed(32, 32, {}, kLater), true,
       Idle::no, true, false, milliseconds(0)},
      {"5: work found again right after gives them back", In(Idle::sentinel, false, true),
       IdleEvent::Claimed(1, 32, {}, kSoonAfter), true, Idle::no, true, false, milliseconds(1)},
      {"5: a covered worker gives its locks back too", In(Idle::covered, false, true),
       IdleEvent::Claimed(1, 32, {}, kSoonAfter), true, Idle::no, true, false, milliseconds(1)},
      {"5: a standby worker holds nothing to give back", In(Idle::standby, false, true),
       IdleEvent::Claimed(1, 32, {}, kSoonAfter), true, Idle::no, false, false, milliseconds(1)},
      {"5: right after an empty claim is not again", In(Idle::sentinel), IdleEvent::Claimed(1, 32, {}, kSoonAfter),
       true, Idle::sentinel, false, false, kPoll},
      // 7. Without notifications the worker only polls.
      {"7: poll only", In(Idle::no), IdleEvent::Claimed(0, 32), false, Idle::no, false, false, kPoll},
      // 8. No idle wait outlasts the route's next delayed message: the empty claim says when it
      //    falls due (by the database's clock), and nobody announces it when it does.
      {"8: a sentinel waits until the next delayed message falls due", In(Idle::sentinel, true),
       IdleEvent::Claimed(0, 32, milliseconds(300)), true, Idle::sentinel, false, false, milliseconds(300)},
      {"8: ... and a woken one too", In(Idle::sentinel), IdleEvent::Claimed(0, 32, milliseconds(300)), true,
       Idle::sentinel, false, false, milliseconds(300)},
      {"8: one due after the poll: the poll", In(Idle::sentinel, true), IdleEvent::Claimed(0, 32, milliseconds(5000)),
       true, Idle::sentinel, false, false, kPoll},
      {"8: a covered worker: whichever comes first", In(Idle::covered, true),
       IdleEvent::Claimed(0, 32, milliseconds(100)), true, Idle::covered, false, false, milliseconds(100)},
      {"8: a covered worker: its look comes first", In(Idle::covered, true),
       IdleEvent::Claimed(0, 32, milliseconds(300)), true, Idle::covered, false, false, kCoveredLook},
      {"8: poll only", In(Idle::no), IdleEvent::Claimed(0, 32, milliseconds(300)), false, Idle::no, false, false,
       milliseconds(300)},
      {"8: not yet announced: announce first, as without one", In(Idle::no), IdleEvent::Claimed(0, 32, milliseconds(300)),
       true, Idle::no, false, true, milliseconds(0)},
      {"8: due at once still waits 1 ms", In(Idle::sentinel, true), IdleEvent::Claimed(0, 32, milliseconds(0)), true,
       Idle::sentinel, false, false, milliseconds(1)},
      {"8: after a short batch too", In(Idle::sentinel), IdleEvent::Claimed(3, 32, milliseconds(300), kLater), true,
       Idle::sentinel, false, false, milliseconds(300)},
      {"8: ... but not while busy: it claims again", In(Idle::no), IdleEvent::Claimed(3, 32, milliseconds(300), kLater),
       true, Idle::no, false, false, milliseconds(1)},
      // The claimer's pacing: a short claim pauses (claim_pacing.h), a full one claims at once.
      {"pacing: short claim", In(Idle::no), IdleEvent::Claimed(5, 32), true, Idle::no, false, false, milliseconds(1)},
      {"pacing: full claim", In(Idle::no), IdleEvent::Claimed(32, 32), true, Idle::no, false, false, milliseconds(0)},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.rule);
    const IdleStep step = Next(r.state, r.event, r.notify, kPoll);
    EXPECT_EQ(step.state.idle, r.idle);
    EXPECT_EQ(step.action.leave_idle, r.leave_idle);
    EXPECT_EQ(step.action.announce, r.announce);
    EXPECT_EQ(step.action.wait, r.wait);
  }
}

TEST(IdleProtocol, TheBusyBackoffNeverExceedsThePoll) {
  const IdleStep step = Next(In(Idle::no, false, false, milliseconds(8)), IdleEvent::Announce(Announced::busy),
                             true, milliseconds(5));
  EXPECT_EQ(step.action.wait, milliseconds(5));
}

TEST(IdleProtocol, FindingWorkResetsTheBusyBackoffAndTheLookAfterAnnouncing) {
  const IdleStep step = Next(In(Idle::sentinel, true, false, milliseconds(8)), IdleEvent::Claimed(1, 32), true, kPoll);
  EXPECT_EQ(step.state.backoff, milliseconds(0));
  EXPECT_FALSE(step.state.just_announced);
  EXPECT_TRUE(step.state.found_work);
}

// A trickle: claim, nothing, announce (sentinel), one more look, wait; messages arrive 10 ms
// apart and each is claimed with the locks kept, the worker waiting for the next NOTIFY after
// each, with no claim in between; a wake-up to nothing waits again without announcing.
TEST(IdleProtocol, ATrickleKeepsItsSentinel) {
  IdleState s;
  std::vector<IdleAction> actions;
  for (const IdleEvent& e : {IdleEvent::Claimed(0, 32), IdleEvent::Announce(Announced::sentinel),
                             IdleEvent::Claimed(0, 32), IdleEvent::Claimed(1, 32, {}, kFoundAt, kFoundAt),
                             IdleEvent::Claimed(1, 32, {}, kLater, kLater),
                             IdleEvent::Claimed(1, 32, {}, kLater + milliseconds(10)),
                             IdleEvent::Claimed(0, 32)}) {
    const IdleStep step = Next(s, e, true, kPoll);
    s = step.state;
    actions.push_back(step.action);
  }
  EXPECT_TRUE(actions[0].announce);
  EXPECT_EQ(actions[1].wait, milliseconds(0));
  EXPECT_EQ(actions[2].wait, kPoll);
  for (size_t i = 3; i <= 5; ++i) {
    EXPECT_FALSE(actions[i].leave_idle) << i;
    EXPECT_FALSE(actions[i].announce) << i;
    EXPECT_EQ(actions[i].wait, kPoll) << i;
  }
  EXPECT_EQ(actions[6].wait, kPoll);
  EXPECT_FALSE(actions[6].announce);
  EXPECT_EQ(s.idle, Idle::sentinel);
  EXPECT_TRUE(LeavesOnStop(s));
  EXPECT_FALSE(LeavesOnStop(In(Idle::standby)));
}

}  // namespace
}  // namespace cogo::runtime
