#include "cogo/runtime/claim_pacing.h"

#include <gtest/gtest.h>

#include <vector>

namespace {

using cogo::runtime::kGatherMax;
using cogo::runtime::NextClaimSize;
using cogo::runtime::NextGatherPause;
using std::chrono::milliseconds;

TEST(ClaimPacing, AFullOrEmptyClaimDoesNotPause) {
  for (const auto previous : {milliseconds(0), milliseconds(1), milliseconds(4), kGatherMax}) {
    EXPECT_EQ(NextGatherPause(previous, 32, 32), milliseconds(0));
    EXPECT_EQ(NextGatherPause(previous, 0, 32), milliseconds(0));
  }
}

TEST(ClaimPacing, TheFirstShortClaimPausesOneMillisecond) {
  EXPECT_EQ(NextGatherPause(milliseconds(0), 1, 32), milliseconds(1));
  EXPECT_EQ(NextGatherPause(milliseconds(0), 31, 32), milliseconds(1));
}

TEST(ClaimPacing, ThreeOrMoreMessagesPerClaimDoubleThePauseUpToTheMaximum) {
  milliseconds pause(0);
  std::vector<milliseconds> seen;
  for (int i = 0; i < 6; ++i) {
    pause = NextGatherPause(pause, i % 2 == 0 ? 3 : 31, 32);
    seen.push_back(pause);
  }
  EXPECT_EQ(seen, (std::vector<milliseconds>{milliseconds(1), milliseconds(2), milliseconds(4),
                                             milliseconds(8), kGatherMax, kGatherMax}));
  EXPECT_EQ(kGatherMax, milliseconds(8));
}

TEST(ClaimPacing, TwoMessagesHoldThePause) {
  EXPECT_EQ(NextGatherPause(milliseconds(1), 2, 32), milliseconds(1));
  EXPECT_EQ(NextGatherPause(milliseconds(4), 2, 32), milliseconds(4));
  EXPECT_EQ(NextGatherPause(kGatherMax, 2, 32), kGatherMax);
}

TEST(ClaimPacing, ASingleMessageHalvesThePauseDownToOneMillisecond) {
  EXPECT_EQ(NextGatherPause(kGatherMax, 1, 32), milliseconds(4));
  EXPECT_EQ(NextGatherPause(milliseconds(4), 1, 32), milliseconds(2));
  EXPECT_EQ(NextGatherPause(milliseconds(2), 1, 32), milliseconds(1));
  EXPECT_EQ(NextGatherPause(milliseconds(1), 1, 32), milliseconds(1));
}

TEST(ClaimPacing, AOneMessageCapacityNeverPauses) {
  // wanted == 1: every claim that finds anything is full.
  EXPECT_EQ(NextGatherPause(milliseconds(0), 1, 1), milliseconds(0));
  EXPECT_EQ(NextGatherPause(kGatherMax, 1, 1), milliseconds(0));
}

TEST(ClaimSize, NothingWaitingToStartOrToBeFlushedClaimsWhateverIsFreeUpToABatch) {
  struct Case {
    int free, batch, want;
  };
  for (const Case& c : std::vector<Case>{{0, 256, 0}, {1, 256, 1}, {4, 256, 4}, {256, 256, 256},
                                         {600, 256, 256}, {-3, 256, 0}, {1, 1, 1}}) {
    EXPECT_EQ(NextClaimSize(c.free, 0, 0, c.batch), c.want) << c.free << " free, batch " << c.batch;
  }
}

TEST(ClaimSize, WhileMessagesWaitToStartOrToBeFlushedAClaimWaitsForHalfABatch) {
  struct Case {
    int free, waiting, unflushed, batch, want;
  };
  for (const Case& c : std::vector<Case>{{4, 256, 0, 256, 0},     // the top-up after a full claim
                                         {4, 0, 512, 256, 0},     // the flush will free a batch
                                         {127, 130, 0, 256, 0},
                                         {128, 130, 0, 256, 128},
                                         {128, 0, 3, 256, 128},
                                         {300, 1, 1, 256, 256},
                                         {1, 5, 0, 2, 1},         // half of 2 is 1
                                         {1, 0, 5, 1, 1},         // a batch of 1 is always worth it
                                         {0, 5, 5, 1, 0}}) {
    EXPECT_EQ(NextClaimSize(c.free, c.waiting, c.unflushed, c.batch), c.want)
        << c.free << " free, " << c.waiting << " waiting, " << c.unflushed << " unflushed, batch " << c.batch;
  }
}

}  // namespace
