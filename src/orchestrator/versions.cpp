#include "cogo/orchestrator/versions.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "cogo/policy/admit.h"

namespace cogo::orchestrator {
namespace {

bool Live(const AgentVersion& v) {
  return v.status == VersionStatus::canary || v.status == VersionStatus::active;
}

double FromUnits(int64_t units) { return static_cast<double>(units) / 100.0; }

// FNV-1a, then MurmurHash3's finaliser: FNV alone spreads short numeric ids poorly over the
// low digits the bucket is taken from.
uint64_t Hash(std::string_view agent_id, std::string_view request_id) {
  uint64_t h = 14695981039346656037ull;
  const auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (const char c : agent_id) mix(static_cast<unsigned char>(c));
  mix(0);  // "ab" + "c" and "a" + "bc" differ
  for (const char c : request_id) mix(static_cast<unsigned char>(c));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

OpRefusal Refuse(std::string reason, std::string message) { return {std::move(reason), std::move(message)}; }

// Builds an operation's result: the agent's versions after it, and the event each changed row
// gets (rows not named get "weight" when only their share moved).
class NextVersions {
 public:
  NextVersions(const std::vector<AgentVersion>& current, policy::TimePoint now) : before_(current), now_(now) {
    for (const auto& v : current) after_.emplace(v.version, v);
  }
  AgentVersion* Find(const std::string& version) {
    const auto it = after_.find(version);
    return it == after_.end() ? nullptr : &it->second;
  }
  AgentVersion* Active() {
    for (auto& [name, v] : after_) {
      if (v.status == VersionStatus::active) return &v;
    }
    return nullptr;
  }
  void Add(AgentVersion v, std::string event) {
    events_[v.version] = std::move(event);
    after_.emplace(v.version, std::move(v));
  }
  void Set(AgentVersion& v, VersionStatus status, int64_t units, std::string event) {
    v.status = status;
    v.weight = FromUnits(units);
    events_[v.version] = std::move(event);
  }
  // Canary units, leaving out `except`.
  int64_t CanaryUnits(const std::string& except = "") const {
    int64_t sum = 0;
    for (const auto& [name, v] : after_) {
      if (v.status == VersionStatus::canary && name != except) sum += WeightUnits(v.weight);
    }
    return sum;
  }
  // The active version keeps what the canaries leave.
  void Rebalance() {
    if (AgentVersion* active = Active()) {
      const int64_t rest = std::max<int64_t>(0, kWeightUnits - CanaryUnits());
      if (WeightUnits(active->weight) != rest) {
        active->weight = FromUnits(rest);
        if (!events_.count(active->version)) events_[active->version] = "weight";
      }
    }
  }
  std::vector<VersionChange> Changes() {
    std::map<std::string, const AgentVersion*> old;
    for (const auto& v : before_) old.emplace(v.version, &v);
    std::vector<VersionChange> out;
    for (auto& [name, v] : after_) {
      const auto it = old.find(name);
      if (it != old.end() && it->second->status == v.status &&
          WeightUnits(it->second->weight) == WeightUnits(v.weight)) {
        continue;
      }
      v.since = now_;
      VersionChange change{it == old.end() ? std::nullopt : std::optional<AgentVersion>(*it->second), v,
                           events_.count(name) ? events_[name] : "weight"};
      out.push_back(std::move(change));
    }
    // The table allows one active version per agent at every statement: leave before entering.
    std::stable_partition(out.begin(), out.end(), [](const VersionChange& c) {
      return c.before && c.before->status == VersionStatus::active && c.after.status != VersionStatus::active;
    });
    return out;
  }

 private:
  const std::vector<AgentVersion>& before_;
  policy::TimePoint now_;
  std::map<std::string, AgentVersion> after_;
  std::map<std::string, std::string> events_;
};

}  // namespace

const char* StatusName(VersionStatus status) {
  switch (status) {
    case VersionStatus::proposed: return "proposed";
    case VersionStatus::canary: return "canary";
    case VersionStatus::active: return "active";
    case VersionStatus::retired: return "retired";
  }
  return "proposed";
}

std::optional<VersionStatus> ParseStatus(std::string_view name) {
  for (const auto s : {VersionStatus::proposed, VersionStatus::canary, VersionStatus::active,
                       VersionStatus::retired}) {
    if (name == StatusName(s)) return s;
  }
  return std::nullopt;
}

const char* ActionName(VersionAction action) {
  switch (action) {
    case VersionAction::propose: return "propose";
    case VersionAction::canary: return "canary";
    case VersionAction::promote: return "promote";
    case VersionAction::rollback: return "rollback";
  }
  return "propose";
}

int64_t WeightUnits(double weight_percent) {
  if (!(weight_percent > 0)) return 0;  // also NaN
  return std::min<int64_t>(kWeightUnits, std::llround(weight_percent * 100.0));
}

int64_t RequestBucket(std::string_view agent_id, std::string_view request_id) {
  return static_cast<int64_t>(Hash(agent_id, request_id) % static_cast<uint64_t>(kWeightUnits));
}

std::optional<size_t> ChooseVersion(const std::vector<AgentVersion>& versions, std::string_view request_id) {
  std::vector<size_t> line;
  int64_t total = 0;
  for (size_t i = 0; i < versions.size(); ++i) {
    if (Live(versions[i]) && WeightUnits(versions[i].weight) > 0) {
      line.push_back(i);
      total += WeightUnits(versions[i].weight);
    }
  }
  if (line.empty()) return std::nullopt;
  std::sort(line.begin(), line.end(), [&](size_t a, size_t b) {
    const bool ca = versions[a].status == VersionStatus::canary;
    const bool cb = versions[b].status == VersionStatus::canary;
    if (ca != cb) return ca;
    return versions[a].version < versions[b].version;
  });
  // Scaled onto the total, so weights that do not add up to 100 still split in proportion.
  const int64_t point = RequestBucket(versions[line.front()].agent_id, request_id) * total / kWeightUnits;
  int64_t end = 0;
  for (const size_t i : line) {
    end += WeightUnits(versions[i].weight);
    if (point < end) return i;
  }
  return line.back();
}

Plan WithVersion(Plan plan, const AgentVersion& version) {
  plan.rule.version = version.version;
  plan.rule.model = version.model;
  plan.rule.budget = version.budget;
  plan.rule.ttl = version.ttl;
  return plan;
}

OpResult PlanVersionOp(const std::vector<AgentVersion>& current, const VersionOp& op, policy::TimePoint now) {
  NextVersions next(current, now);
  AgentVersion* target = next.Find(op.version);
  const std::string name = op.agent_id + " " + op.version;
  if (op.action == VersionAction::propose) {
    if (target != nullptr) return Refuse("version_exists", name + " exists already");
    AgentVersion v = op.proposal;
    v.agent_id = op.agent_id;
    v.version = op.version;
    v.status = VersionStatus::proposed;
    v.weight = 0;
    if (const AgentVersion* active = next.Active()) {
      if (v.model.empty()) v.model = active->model;
      if (v.budget.max_cost_usd <= 0) v.budget.max_cost_usd = active->budget.max_cost_usd;
      if (v.budget.max_tokens <= 0) v.budget.max_tokens = active->budget.max_tokens;
      if (v.ttl.count() <= 0) v.ttl = active->ttl;
    }
    if (v.model.empty() || v.budget.max_cost_usd <= 0 || v.budget.max_tokens <= 0 || v.ttl.count() <= 0) {
      return Refuse("incomplete_proposal", op.agent_id + " has no active version to take model, budget and TTL from");
    }
    next.Add(std::move(v), "proposed");
    return next.Changes();
  }
  if (target == nullptr) return Refuse("unknown_version", "no version " + name);
  switch (op.action) {
    case VersionAction::propose:
      break;
    case VersionAction::canary: {
      if (target->status == VersionStatus::retired) return Refuse("version_retired", name + " is retired; propose a new version");
      if (target->status == VersionStatus::active) return Refuse("already_active", name + " is the active version");
      if (next.Active() == nullptr) return Refuse("no_active_version", op.agent_id + " has no active version to share traffic with; promote one");
      const int64_t units = WeightUnits(op.weight);
      if (next.CanaryUnits(op.version) + units > kWeightUnits) {
        return Refuse("weights_exceed_100", "the canaries of " + op.agent_id + " would take more than 100 %");
      }
      next.Set(*target, VersionStatus::canary, units, target->status == VersionStatus::canary ? "weight" : "canary");
      next.Rebalance();
      break;
    }
    case VersionAction::promote: {
      if (target->status == VersionStatus::active) return Refuse("already_active", name + " is the active version");
      if (AgentVersion* old = next.Active()) next.Set(*old, VersionStatus::retired, 0, "retired");
      next.Set(*target, VersionStatus::active, std::max<int64_t>(0, kWeightUnits - next.CanaryUnits(op.version)),
               "promoted");
      break;
    }
    case VersionAction::rollback: {
      if (target->status == VersionStatus::retired) return Refuse("version_retired", name + " is retired already");
      if (target->status != VersionStatus::active) {
        next.Set(*target, VersionStatus::retired, 0, "rolled_back");
        next.Rebalance();
        break;
      }
      const AgentVersion* fallback = nullptr;
      for (const auto& v : current) {
        if (v.status != VersionStatus::retired || v.version == op.version) continue;
        if (fallback == nullptr || v.since > fallback->since ||
            (v.since == fallback->since && v.version > fallback->version)) {
          fallback = &v;
        }
      }
      if (fallback == nullptr) return Refuse("nothing_to_roll_back_to", op.agent_id + " has no earlier version to return to");
      next.Set(*target, VersionStatus::retired, 0, "rolled_back");
      AgentVersion* back = next.Find(fallback->version);
      next.Set(*back, VersionStatus::active, std::max<int64_t>(0, kWeightUnits - next.CanaryUnits()), "reactivated");
      break;
    }
  }
  return next.Changes();
}

std::optional<OpRefusal> CheckVersion(const AgentVersion& version, const RoutingTable& routing,
                                      const policy::PolicyTable& policy_table, policy::TimePoint now) {
  bool named = false;
  for (const auto& [intent, rule] : routing.rules()) {
    if (rule.agent_id != version.agent_id) continue;
    named = true;
    const auto envelope = BuildAssignment(WithVersion(Plan{intent, "rule", rule, ""}, version), now);
    const auto decision = policy::Admit(envelope, policy_table.Lookup(envelope), std::nullopt,
                                        policy::TenantSpend{0.0, std::numeric_limits<double>::infinity()}, now);
    if (!decision.admitted()) {
      return Refuse("policy_" + std::string(policy::ReasonName(*decision.reject)),
                    "rule " + intent + " with " + version.agent_id + " " + version.version + ": " + decision.detail);
    }
  }
  if (!named) return Refuse("unknown_agent", "no routing rule names agent " + version.agent_id);
  return std::nullopt;
}

}  // namespace cogo::orchestrator
