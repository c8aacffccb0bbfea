// The wake-up payload "service/role/shard" (cogo_wake, sql/005 and sql/028), read back by the
// claimer that hears it: bus::ParseWakeUp.
#include <gtest/gtest.h>

#include <string>

#include "cogo/bus/keys.h"

namespace cogo::bus {
namespace {

TEST(WakeUp, PayloadsAreReadBackOrRefused) {
  struct Case {
    std::string payload;
    bool valid;
    std::string service, role;
    int shard;
  };
  const Case cases[] = {
      {"orchestrator/decide/0", true, "orchestrator", "decide", 0},
      {"gateway/chat/17", true, "gateway", "chat", 17},
      {"a-b.c/d_e/2147483647", true, "a-b.c", "d_e", 2147483647},
      {"", false, "", "", 0},
      {"service", false, "", "", 0},
      {"service/role", false, "", "", 0},
      {"service/role/", false, "", "", 0},
      {"/role/0", false, "", "", 0},
      {"service//0", false, "", "", 0},
      {"service/role/x", false, "", "", 0},
      {"service/role/1x", false, "", "", 0},
      {"service/role/0/1", false, "", "", 0},
      {"service/role/99999999999", false, "", "", 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.payload);
    const auto wake = ParseWakeUp(c.payload);
    ASSERT_EQ(wake.has_value(), c.valid);
    if (!c.valid) continue;
    EXPECT_EQ(wake->service, c.service);
    EXPECT_EQ(wake->role, c.role);
    EXPECT_EQ(wake->shard, c.shard);
  }
}

}  // namespace
}  // namespace cogo::bus
