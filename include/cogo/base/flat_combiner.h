// FlatCombiner: many threads, one writer at a time, one transaction per group. A caller submits
// its item; whichever caller finds no group in progress takes every item queued (its own among
// them, or not yet) and runs them as one group while the others wait for their results. Under
// load a group holds many items, so a row lock, a commit and a WAL flush are paid once per group
// instead of once per item, and callers no longer queue on each other's locks; alone, an item is
// a group of one and waits for nobody. Used by the executor's admissions and the edge's inserts.
// Thread-safe.
#pragma once

#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace cogo::base {

template <typename Item, typename Result>
class FlatCombiner {
 public:
  // Runs `run_group(items)` -> std::vector<Result> (one per item, in order) for the group this
  // item joined, on whichever caller runs that group, and returns this item's result. When the
  // group's run throws, every member of the group rethrows that exception.
  template <typename RunGroup>
  Result Submit(Item item, RunGroup&& run_group) {
    Slot mine{std::move(item), std::nullopt, nullptr};
    std::unique_lock lock(mu_);
    waiting_.push_back(&mine);
    while (!mine.result && !mine.error) {
      if (running_) {
        ran_.wait(lock);
        continue;
      }
      running_ = true;
      std::vector<Slot*> group;
      group.swap(waiting_);
      lock.unlock();
      std::vector<Result> results;
      std::exception_ptr error;
      try {  // whatever throws, every member of the group gets an answer
        std::vector<Item*> items;
        items.reserve(group.size());
        for (Slot* slot : group) items.push_back(&slot->item);
        results = run_group(items);
        if (results.size() != group.size()) throw std::logic_error("a group's run returned a result count unlike its size");
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      for (size_t i = 0; i < group.size(); ++i) {
        if (error) {
          group[i]->error = error;
        } else {
          group[i]->result = std::move(results[i]);
        }
      }
      running_ = false;
      ran_.notify_all();
    }
    if (mine.error) std::rethrow_exception(mine.error);
    return std::move(*mine.result);
  }

 private:
  struct Slot {
    Item item;
    std::optional<Result> result;
    std::exception_ptr error;
  };

  std::mutex mu_;
  std::condition_variable ran_;  // a group ran: its members have their results
  std::vector<Slot*> waiting_;
  bool running_ = false;
};

}  // namespace cogo::base
