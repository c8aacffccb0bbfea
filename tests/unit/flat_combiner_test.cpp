// base::FlatCombiner: every caller gets its own item's result, groups form while one runs, and a
// group whose run throws makes each of its members throw.
#include "cogo/base/flat_combiner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <stdexcept>
#include <thread>
#include <vector>

namespace cogo::base {
namespace {

using namespace std::chrono_literals;

TEST(FlatCombinerTest, AloneAnItemIsAGroupOfOne) {
  FlatCombiner<int, int> combiner;
  std::vector<size_t> sizes;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(combiner.Submit(i, [&](const std::vector<int*>& group) {
      sizes.push_back(group.size());
      std::vector<int> out;
      for (int* v : group) out.push_back(*v * 10);
      return out;
    }), i * 10);
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{1, 1, 1}));
}

TEST(FlatCombinerTest, CallersArrivingWhileAGroupRunsAreRunTogetherAndEachGetsItsOwnResult) {
  FlatCombiner<int, int> combiner;
  constexpr int kThreads = 16;
  constexpr int kEach = 50;
  std::atomic<int> runs{0};
  std::atomic<int> items{0};
  std::atomic<int> wrong{0};
  std::latch start(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kEach; ++i) {
          const int item = t * 1000 + i;
          const int result = combiner.Submit(item, [&](const std::vector<int*>& group) {
            runs.fetch_add(1);
            items.fetch_add(static_cast<int>(group.size()));
            std::this_thread::sleep_for(200us);  // a commit: others queue meanwhile
            std::vector<int> out;
            for (int* v : group) out.push_back(-*v);
            return out;
          });
          if (result != -item) wrong.fetch_add(1);
        }
      });
    }
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(items.load(), kThreads * kEach);  // every item ran exactly once
  EXPECT_LT(runs.load(), kThreads * kEach / 2) << "callers that waited were not grouped";
}

TEST(FlatCombinerTest, EveryMemberOfAGroupWhoseRunThrowsThrowsAndTheNextGroupRuns) {
  FlatCombiner<int, int> combiner;
  constexpr int kThreads = 8;
  std::atomic<int> threw{0};
  std::latch start(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        try {
          (void)combiner.Submit(t, [](const std::vector<int*>&) -> std::vector<int> {
            std::this_thread::sleep_for(1ms);
            throw std::runtime_error("connection lost");
          });
        } catch (const std::runtime_error& e) {
          if (std::string(e.what()) == "connection lost") threw.fetch_add(1);
        }
      });
    }
  }
  EXPECT_EQ(threw.load(), kThreads);
  EXPECT_EQ(combiner.Submit(7, [](const std::vector<int*>& group) { return std::vector<int>(group.size(), 1); }), 1);
  // A run that answers for fewer items than it was given is a bug: its group throws.
  EXPECT_THROW((void)combiner.Submit(7, [](const std::vector<int*>&) { return std::vector<int>{}; }),
               std::logic_error);
}

}  // namespace
}  // namespace cogo::base
