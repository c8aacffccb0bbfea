#include "cogo/orchestrator/versions.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace {

using cogo::orchestrator::AgentVersion;
using cogo::orchestrator::ChooseVersion;
using cogo::orchestrator::OpRefusal;
using cogo::orchestrator::PlanVersionOp;
using cogo::orchestrator::VersionAction;
using cogo::orchestrator::VersionChange;
using cogo::orchestrator::VersionOp;
using cogo::orchestrator::VersionStatus;
using cogo::orchestrator::WeightUnits;
using S = VersionStatus;

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

AgentVersion V(const std::string& version, S status, double weight, int since_s = 0) {
  AgentVersion v;
  v.agent_id = "chat";
  v.version = version;
  v.model = "m-" + version;
  v.budget = {0.05, 4000};
  v.ttl = std::chrono::milliseconds(60000);
  v.status = status;
  v.weight = weight;
  v.since = std::chrono::system_clock::time_point(std::chrono::seconds(since_s));
  return v;
}

// How many of `n` request ids (1..n) each version serves.
std::map<std::string, int> Split(const std::vector<AgentVersion>& versions, int n) {
  std::map<std::string, int> out;
  for (int id = 1; id <= n; ++id) {
    const auto chosen = ChooseVersion(versions, std::to_string(id));
    out[chosen ? versions[*chosen].version : "none"]++;
  }
  return out;
}

TEST(WeightedChoice, WeightsOfZeroAndHundred) {
  struct Case {
    const char* name;
    std::vector<AgentVersion> versions;
    std::map<std::string, int> split;  // of 1000 requests
  };
  const std::vector<Case> cases = {
      {"one active at 100", {V("1", S::active, 100)}, {{"1", 1000}}},
      {"a canary at 0 gets nothing", {V("1", S::active, 100), V("2", S::canary, 0)}, {{"1", 1000}}},
      {"a canary at 100 gets everything", {V("1", S::active, 0), V("2", S::canary, 100)}, {{"2", 1000}}},
      {"proposed and retired versions never serve, whatever their weight",
       {V("1", S::active, 100), V("2", S::proposed, 50), V("3", S::retired, 50)}, {{"1", 1000}}},
      {"nothing weighted: no choice", {V("1", S::active, 0), V("2", S::retired, 0)}, {{"none", 1000}}},
      {"no versions: no choice", {}, {{"none", 1000}}},
  };
  for (const auto& c : cases) EXPECT_EQ(Split(c.versions, 1000), c.split) << c.name;
}

TEST(WeightedChoice, WeightsRoundToHundredthsOfAPercent) {
  struct Case {
    double weight;
    int64_t units;
  };
  const std::vector<Case> cases = {{0, 0},       {-5, 0},          {0.004, 0},  {0.005, 1},  {0.01, 1},
                                   {10, 1000},   {33.333, 3333},   {33.335, 3334}, {99.999, 10000},
                                   {100, 10000}, {250, 10000}};
  for (const auto& c : cases) EXPECT_EQ(WeightUnits(c.weight), c.units) << c.weight;
  // A weight that rounds to nothing is never chosen, one that rounds to 0.01 % sometimes is.
  EXPECT_EQ(Split({V("1", S::active, 99.996), V("2", S::canary, 0.004)}, 20000).count("2"), 0u);
  EXPECT_GT(Split({V("1", S::active, 99.99), V("2", S::canary, 0.01)}, 200000)["2"], 0);
}

TEST(WeightedChoice, TheSameRequestGetsTheSameVersion) {
  const std::vector<AgentVersion> versions = {V("1", S::active, 90), V("2", S::canary, 10)};
  for (const char* id : {"1", "42", "req-7f3a", ""}) {
    const auto first = ChooseVersion(versions, id);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(ChooseVersion(versions, id), first) << id;
  }
  // The order versions are listed in does not matter.
  const std::vector<AgentVersion> reversed = {versions[1], versions[0]};
  for (int id = 1; id <= 500; ++id) {
    EXPECT_EQ(versions[*ChooseVersion(versions, std::to_string(id))].version,
              reversed[*ChooseVersion(reversed, std::to_string(id))].version);
  }
}

TEST(WeightedChoice, ARequestTheCanaryHadItKeepsAsTheCanaryGrows) {
  const std::vector<AgentVersion> at10 = {V("1", S::active, 90), V("2", S::canary, 10)};
  const std::vector<AgentVersion> at50 = {V("1", S::active, 50), V("2", S::canary, 50)};
  for (int id = 1; id <= 5000; ++id) {
    const auto small = ChooseVersion(at10, std::to_string(id));
    if (at10[*small].version == "2") {
      EXPECT_EQ(at50[*ChooseVersion(at50, std::to_string(id))].version, "2") << id;
    }
  }
}

TEST(WeightedChoice, TheSplitFollowsTheWeightsOverManyRequests) {
  struct Case {
    std::vector<AgentVersion> versions;
    std::map<std::string, double> share;
  };
  const std::vector<Case> cases = {
      {{V("1", S::active, 90), V("2", S::canary, 10)}, {{"1", 0.90}, {"2", 0.10}}},
      {{V("1", S::active, 50), V("2", S::canary, 50)}, {{"1", 0.50}, {"2", 0.50}}},
      {{V("1", S::active, 98), V("2", S::canary, 1), V("3", S::canary, 1)}, {{"1", 0.98}, {"2", 0.01}, {"3", 0.01}}},
      {{V("1", S::active, 33.33), V("2", S::canary, 33.33), V("3", S::canary, 33.34)},
       {{"1", 1 / 3.0}, {"2", 1 / 3.0}, {"3", 1 / 3.0}}},
      // Weights that do not add up to 100 split in proportion.
      {{V("1", S::active, 30), V("2", S::canary, 10)}, {{"1", 0.75}, {"2", 0.25}}},
  };
  constexpr int kRequests = 100000;
  for (const auto& c : cases) {
    const auto split = Split(c.versions, kRequests);
    for (const auto& [version, share] : c.share) {
      const double seen = split.count(version) ? split.at(version) / double(kRequests) : 0.0;
      EXPECT_NEAR(seen, share, 0.01) << version << " of " << c.versions.size();
    }
  }
  // Two agents' canaries pick different requests (the agent id is hashed too).
  auto other = std::vector<AgentVersion>{V("1", S::active, 90), V("2", S::canary, 10)};
  for (auto& v : other) v.agent_id = "summarizer";
  const std::vector<AgentVersion> chat = {V("1", S::active, 90), V("2", S::canary, 10)};
  int both = 0;
  for (int id = 1; id <= 10000; ++id) {
    if (chat[*ChooseVersion(chat, std::to_string(id))].version == "2" &&
        other[*ChooseVersion(other, std::to_string(id))].version == "2") {
      ++both;
    }
  }
  EXPECT_NEAR(both / 10000.0, 0.01, 0.005);
}

// What an operation leaves: version -> (status, weight), and each change's event.
struct After {
  std::map<std::string, std::pair<S, double>> versions;
  std::vector<std::string> events;  // "<version> <event>" in the order written
};

std::variant<After, std::string> Apply(const std::vector<AgentVersion>& current, VersionOp op) {
  op.agent_id = "chat";
  const auto result = PlanVersionOp(current, op, kNow);
  if (const auto* refusal = std::get_if<OpRefusal>(&result)) return refusal->reason;
  After out;
  for (const auto& v : current) out.versions[v.version] = {v.status, v.weight};
  for (const auto& c : std::get<std::vector<VersionChange>>(result)) {
    out.versions[c.after.version] = {c.after.status, c.after.weight};
    out.events.push_back(c.after.version + " " + c.event);
    EXPECT_EQ(c.after.since, kNow);
  }
  return out;
}

VersionOp Op(VersionAction action, const std::string& version, double weight = 0) {
  VersionOp op;
  op.action = action;
  op.version = version;
  op.weight = weight;
  return op;
}

TEST(VersionOps, TableOfOperations) {
  const std::vector<AgentVersion> base = {V("1", S::active, 100, 10), V("2", S::proposed, 0, 20)};
  const std::vector<AgentVersion> canary = {V("1", S::active, 90, 10), V("2", S::canary, 10, 20)};
  const std::vector<AgentVersion> promoted = {V("1", S::retired, 0, 30), V("0", S::retired, 0, 5),
                                              V("2", S::active, 100, 30)};
  struct Case {
    const char* name;
    std::vector<AgentVersion> current;
    VersionOp op;
    std::variant<After, std::string> want;
  };
  VersionOp propose = Op(VersionAction::propose, "3");
  propose.proposal = V("3", S::active, 50);
  const std::vector<Case> cases = {
      {"propose: a new version, proposed at 0 whatever it says", base, propose,
       After{{{"1", {S::active, 100}}, {"2", {S::proposed, 0}}, {"3", {S::proposed, 0}}}, {"3 proposed"}}},
      {"propose an existing version", base, Op(VersionAction::propose, "2"), "version_exists"},
      {"canary at 10: the active version keeps 90", base, Op(VersionAction::canary, "2", 10),
       After{{{"1", {S::active, 90}}, {"2", {S::canary, 10}}}, {"1 weight", "2 canary"}}},
      {"canary weight changed", canary, Op(VersionAction::canary, "2", 50),
       After{{{"1", {S::active, 50}}, {"2", {S::canary, 50}}}, {"1 weight", "2 weight"}}},
      {"canary weights round to 0.01", base, Op(VersionAction::canary, "2", 12.345),
       After{{{"1", {S::active, 87.65}}, {"2", {S::canary, 12.35}}}, {"1 weight", "2 canary"}}},
      {"canary over 100", base, Op(VersionAction::canary, "2", 100.5),
       After{{{"1", {S::active, 0}}, {"2", {S::canary, 100}}}, {"1 weight", "2 canary"}}},
      {"two canaries over 100", {V("1", S::active, 40), V("2", S::canary, 60), V("3", S::proposed, 0)},
       Op(VersionAction::canary, "3", 50), "weights_exceed_100"},
      {"canary of the active version", base, Op(VersionAction::canary, "1", 10), "already_active"},
      {"canary of a retired version", promoted, Op(VersionAction::canary, "1", 10), "version_retired"},
      {"canary without an active version", {V("2", S::proposed, 0)}, Op(VersionAction::canary, "2", 10),
       "no_active_version"},
      {"canary of an unknown version", base, Op(VersionAction::canary, "9", 10), "unknown_version"},
      {"promote a canary: the old active version retires first", canary, Op(VersionAction::promote, "2"),
       After{{{"1", {S::retired, 0}}, {"2", {S::active, 100}}}, {"1 retired", "2 promoted"}}},
      {"promote a proposed version beside another canary",
       {V("1", S::active, 80), V("2", S::canary, 20), V("3", S::proposed, 0)}, Op(VersionAction::promote, "3"),
       After{{{"1", {S::retired, 0}}, {"2", {S::canary, 20}}, {"3", {S::active, 80}}}, {"1 retired", "3 promoted"}}},
      {"promote the active version", base, Op(VersionAction::promote, "1"), "already_active"},
      {"roll back a canary: its share goes back", canary, Op(VersionAction::rollback, "2"),
       After{{{"1", {S::active, 100}}, {"2", {S::retired, 0}}}, {"1 weight", "2 rolled_back"}}},
      {"roll back a proposal", base, Op(VersionAction::rollback, "2"),
       After{{{"1", {S::active, 100}}, {"2", {S::retired, 0}}}, {"2 rolled_back"}}},
      {"roll back the active version: the latest retired one returns", promoted, Op(VersionAction::rollback, "2"),
       After{{{"0", {S::retired, 0}}, {"1", {S::active, 100}}, {"2", {S::retired, 0}}},
             {"2 rolled_back", "1 reactivated"}}},
      {"roll back the only version", {V("1", S::active, 100)}, Op(VersionAction::rollback, "1"),
       "nothing_to_roll_back_to"},
      {"roll back a retired version", promoted, Op(VersionAction::rollback, "1"), "version_retired"},
      {"roll back an unknown version", base, Op(VersionAction::rollback, "9"), "unknown_version"},
  };
  for (const auto& c : cases) {
    const auto got = Apply(c.current, c.op);
    if (const auto* reason = std::get_if<std::string>(&c.want)) {
      ASSERT_TRUE(std::holds_alternative<std::string>(got)) << c.name;
      EXPECT_EQ(std::get<std::string>(got), *reason) << c.name;
      continue;
    }
    ASSERT_TRUE(std::holds_alternative<After>(got)) << c.name << ": refused " << std::get<std::string>(got);
    const auto& want = std::get<After>(c.want);
    const auto& have = std::get<After>(got);
    EXPECT_EQ(have.events, want.events) << c.name;
    for (const auto& [version, state] : want.versions) {
      ASSERT_TRUE(have.versions.count(version)) << c.name << ": " << version;
      EXPECT_EQ(have.versions.at(version).first, state.first) << c.name << ": " << version;
      EXPECT_DOUBLE_EQ(have.versions.at(version).second, state.second) << c.name << ": " << version;
    }
  }
}

}  // namespace
