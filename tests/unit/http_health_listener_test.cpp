#include "cogo/http/health_listener.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cogo::http {
namespace {

// A component in a given state: what ComponentsReady reads of it.
class StateOf final : public runtime::Component {
 public:
  StateOf(bool ready, std::string fatal) : ready_(ready), fatal_(std::move(fatal)) {}
  void Start() override {}
  void Drain() override {}
  std::string FatalError() const override { return fatal_; }
  bool WaitReady(std::chrono::milliseconds) const override { return ready_; }

 private:
  bool ready_;
  std::string fatal_;
};

TEST(HealthListener, ReadyzWaitsForEveryComponentAndNoneFailed) {
  const StateOf ready(true, ""), waiting(false, ""), failed(true, "database role x may not work a/b"),
      failed_waiting(false, "lost");
  struct Case {
    std::vector<const runtime::Component*> components;
    bool want;
  };
  const std::vector<Case> cases = {
      {{}, true},
      {{&ready}, true},
      {{&ready, &ready}, true},
      {{&waiting}, false},  // connecting, or draining
      {{&ready, &waiting}, false},
      {{&failed}, false},
      {{&failed_waiting}, false},
      {{&ready, &failed, &ready}, false},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(ComponentsReady(cases[i].components), cases[i].want) << "case " << i;
  }
}

}  // namespace
}  // namespace cogo::http
