#include "cogo/workflow/transition.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "cogo/policy/assignment.h"

namespace cogo::workflow {
namespace {

using nlohmann::json;

constexpr double kUsdEpsilon = 1e-9;

bool IsOpenStatus(const std::string& status) { return status == "running" || status == "waiting"; }

// Builds the actions of one transition on a working copy of the run, so that later decisions of
// the same transition see the earlier ones (a Gate reading the step a Wait just finished).
class Machine {
 public:
  Machine(const Definition& definition, RunState run, int64_t now_ms, double jitter)
      : def_(definition), run_(std::move(run)), now_ms_(now_ms), jitter_(jitter) {}

  TransitionResult Apply(const Event& event) {
    if (IsFinalRunStatus(run_.status)) return Ignore("the run already ended " + run_.status);
    return std::visit([this](const auto& e) { return On(e); }, event);
  }

 private:
  TransitionResult On(const StartEvent&) {
    if (!run_.cursor.empty()) return Ignore("the run already started");
    Emit(Audit{"workflow_started", {{"workflow_id", def_.id}}});
    Enter(def_.start);
    return Done();
  }

  TransitionResult On(const StepFinishedEvent& e) {
    auto it = run_.steps.find(e.node);
    if (it == run_.steps.end() || it->second.activation != e.activation || it->second.status != "running") {
      return Ignore("step " + e.node + "#" + std::to_string(e.activation) + " is not running");
    }
    const bool done = e.message_status == "done";
    const std::string status = done ? "succeeded" : (e.message_status == "cancelled" ? "cancelled" : "failed");
    json output = done ? e.result : json();
    FinishStepNow(e.node, e.activation, status, output, done ? "" : e.error);
    Emit(Audit{done ? "step_done" : "step_failed",
               {{"node", e.node}, {"activation", e.activation}, {"message_status", e.message_status}}});
    run_.spent_usd += e.spent_usd;
    run_.spent_tokens += e.spent_tokens;
    if (OverBudget()) {
      End("failed", "budget_exhausted");
      return Done();
    }
    // The run may stand on a Wait this finish satisfies.
    const Node& at = def_.node(run_.cursor);
    if (at.type == NodeType::wait && run_.steps[at.id].status == "waiting") TryWait(at);
    return Done();
  }

  TransitionResult On(const TimerEvent& e) {
    auto it = run_.steps.find(e.node);
    if (run_.cursor != e.node || run_.cursor_activation != e.activation || it == run_.steps.end() ||
        it->second.activation != e.activation || it->second.status != "waiting") {
      return Ignore(std::string(TimerPurposeName(e.purpose)) + " timer of " + e.node + "#" +
                    std::to_string(e.activation) + " is stale");
    }
    const Node& node = def_.node(e.node);
    Emit(Audit{"timer_fired", {{"node", e.node}, {"activation", e.activation},
                               {"purpose", TimerPurposeName(e.purpose)}}});
    if (e.purpose == TimerPurpose::wait_timeout) {
      FinishStepNow(node.id, e.activation, "timed_out", json(), "the wait timed out");
      if (node.on_timeout.empty()) {
        End("timed_out", "wait_timeout");
      } else {
        Enter(node.on_timeout);
      }
    } else {
      FinishStepNow(node.id, e.activation, "succeeded", json(), "");
      Enter(node.target);
    }
    return Done();
  }

  TransitionResult On(const SignalEvent& e) {
    const Node& at = def_.node(run_.cursor.empty() ? def_.start : run_.cursor);
    if (run_.cursor.empty() || at.type != NodeType::wait || at.wait_for != WaitFor::event ||
        run_.steps[at.id].status != "waiting") {
      return Ignore("no open wait takes signal " + std::to_string(e.signal_id) + " now; it stays pending");
    }
    if (!TryWait(at)) return Ignore("signal " + std::to_string(e.signal_id) + " does not match the open wait");
    return Done();
  }

  // Enters nodes until the run stands on a Wait or a Retry backoff, or ends.
  void Enter(const std::string& first) {
    std::string node_id = first;
    while (!node_id.empty() && !ended_) {
      const Node& node = def_.node(node_id);
      if (++run_.total_activations > def_.limits.max_activations) {
        End("failed", "activation_limit");
        return;
      }
      const int activation = run_.steps[node_id].activation + 1;
      node_id = EnterOne(node, activation);
    }
  }

  // Returns the next node to enter at once, or "" when the run now stands still or ended.
  std::string EnterOne(const Node& node, int activation) {
    switch (node.type) {
      case NodeType::publish:
      case NodeType::notify: return EnterPublish(node, activation);
      case NodeType::wait: {
        StartStepNow(Bare(node, activation, "waiting"));
        // `waiting`: on something outside the run (an event); `running`: on its own work.
        Cursor(node.id, activation, node.wait_for == WaitFor::event ? "waiting" : "running");
        Emit(Audit{"workflow_waiting", {{"node", node.id}, {"activation", activation}}});
        // A wait satisfied on entry needs no timer.
        if (!TryWait(node)) Emit(ScheduleTimer{node.id, activation, TimerPurpose::wait_timeout, node.timeout});
        return "";
      }
      case NodeType::retry: {
        const int entries = run_.steps[node.target].activation;  // the target's tries so far
        if (entries - 1 >= node.max_retries) {
          StartStepNow(Bare(node, activation, "running"));
          FinishStepNow(node.id, activation, "failed", json{{"retries", entries - 1}}, "retries exhausted");
          Emit(Audit{"retry_exhausted", {{"node", node.id}, {"target", node.target}, {"retries", entries - 1}}});
          if (node.on_exhausted.empty()) End("failed", "retry_exhausted");
          return node.on_exhausted;
        }
        const auto delay = policy::NextBackoff(entries, node.backoff, jitter_);
        StartStepNow(Bare(node, activation, "waiting"));
        Cursor(node.id, activation, "waiting");
        Emit(ScheduleTimer{node.id, activation, TimerPurpose::retry_backoff, delay});
        Emit(Audit{"retry_scheduled", {{"node", node.id}, {"target", node.target},
                                       {"retry", entries}, {"delay_ms", delay.count()}}});
        return "";
      }
      case NodeType::gate: {
        const json document = RunDocument(run_);
        json checks = json::array();
        bool pass = true;
        for (const auto& assertion : node.asserts) {
          const Check check = Evaluate(assertion, document);
          pass = pass && check.ok;
          checks.push_back({{"path", assertion.path}, {"op", OpName(assertion.op)},
                            {"expected", assertion.value}, {"actual", check.actual}, {"ok", check.ok}});
        }
        json verdict = {{"verdict", pass ? "pass" : "fail"}, {"checks", checks}};
        StartStepNow(Bare(node, activation, "running"));
        FinishStepNow(node.id, activation, pass ? "succeeded" : "failed", verdict, pass ? "" : "gate_failed");
        Emit(Audit{pass ? "gate_passed" : "gate_failed", {{"node", node.id}, {"activation", activation},
                                                          {"checks", checks}}});
        if (pass) return node.next;
        if (node.on_fail.empty()) End("failed", "gate_failed");
        return node.on_fail;
      }
      case NodeType::end: {
        StartStepNow(Bare(node, activation, "running"));
        FinishStepNow(node.id, activation, "succeeded", json(), "");
        End(node.end_status, node.end_status == "succeeded" ? "" : (node.end_reason.empty() ? node.id : node.end_reason));
        return "";
      }
    }
    return "";
  }

  std::string EnterPublish(const Node& node, int activation) {
    json payload;
    try {
      payload = Render(node.payload, RunDocument(run_));
      if (!payload.is_object()) throw std::invalid_argument("the payload must render to an object");
    } catch (const std::invalid_argument& e) {
      StartStepNow(Bare(node, activation, "running"));
      FinishStepNow(node.id, activation, "failed", json(), std::string("template_error: ") + e.what());
      End("failed", "template_error");
      return "";
    }
    StartStep step = Bare(node, activation, "running");
    step.service = node.service;
    step.role = node.role;
    step.max_attempts = node.max_attempts;
    if (node.assignment) {
      // Each step gets what the run has left, capped by the node's own limits.
      const auto& spec = *node.assignment;
      double usd = spec.max_cost_usd.value_or(run_.max_cost_usd.value_or(0.0));
      int64_t tokens = spec.max_tokens.value_or(run_.max_tokens.value_or(0));
      if (run_.max_cost_usd) usd = std::min(usd, *run_.max_cost_usd - run_.spent_usd - run_.reserved_usd);
      if (run_.max_tokens) tokens = std::min(tokens, *run_.max_tokens - run_.spent_tokens - run_.reserved_tokens);
      if (usd <= kUsdEpsilon || tokens <= 0) {
        StartStepNow(Bare(node, activation, "running"));
        FinishStepNow(node.id, activation, "failed", json(), "budget_exhausted: nothing left of the run's budget");
        End("failed", "budget_exhausted");
        return "";
      }
      policy::AssignmentEnvelope envelope;
      envelope.agent_id = spec.agent_id;
      envelope.version = spec.version;
      envelope.model = spec.model;
      envelope.budget = {usd, tokens};
      envelope.ttl = spec.ttl;
      payload["__assignment"] = json::parse(policy::ToJson(envelope));
      step.reserved_usd = usd;
      step.reserved_tokens = tokens;
    }
    step.input = std::move(payload);
    StartStepNow(std::move(step));
    Emit(Audit{"step_started", {{"node", node.id}, {"activation", activation},
                                {"route", node.service + "/" + node.role}}});
    return node.next;
  }

  // Follows the Wait `node` if what it waits for is there; returns whether it did.
  bool TryWait(const Node& node) {
    const int activation = run_.steps[node.id].activation;
    switch (node.wait_for) {
      case WaitFor::step: {
        const StepState& target = run_.steps[node.step];
        if (target.activation == 0) {
          FinishStepNow(node.id, activation, "failed", json(), "wait_on_unstarted_step: " + node.step);
          End("failed", "wait_on_unstarted_step");
          return true;
        }
        if (IsOpenStatus(target.status)) return false;
        const bool ok = target.status == "succeeded";
        FinishStepNow(node.id, activation, ok ? "succeeded" : "failed", target.output, ok ? "" : target.error);
        if (ok) {
          Enter(node.next);
        } else if (node.on_fail.empty()) {
          End("failed", "step_failed");
        } else {
          Enter(node.on_fail);
        }
        return true;
      }
      case WaitFor::event: {
        for (const Signal& signal : run_.signals) {
          if (signal.name != node.event || consumed_.count(signal.id) > 0) continue;
          // Events that came before the wait count within its lookback window.
          if (signal.created_ms < run_.steps[node.id].started_ms - node.lookback.count()) continue;
          consumed_.insert(signal.id);
          Emit(ConsumeSignal{signal.id, node.id, activation});
          FinishStepNow(node.id, activation, "succeeded", signal.data, "");
          Emit(Audit{"event_received", {{"node", node.id}, {"event", node.event}, {"signal_id", signal.id}}});
          Enter(node.next);
          return true;
        }
        return false;
      }
      case WaitFor::condition: {
        const json document = RunDocument(run_);
        json checks = json::array();
        for (const auto& assertion : node.condition) {
          const Check check = Evaluate(assertion, document);
          if (!check.ok) return false;
          checks.push_back({{"path", assertion.path}, {"actual", check.actual}});
        }
        FinishStepNow(node.id, activation, "succeeded", json{{"checks", checks}}, "");
        Enter(node.next);
        return true;
      }
    }
    return false;
  }

  bool OverBudget() const {
    return (run_.max_cost_usd && run_.spent_usd >= *run_.max_cost_usd - kUsdEpsilon) ||
           (run_.max_tokens && run_.spent_tokens >= *run_.max_tokens);
  }

  static StartStep Bare(const Node& node, int activation, const char* status) {
    StartStep step;
    step.node = node.id;
    step.activation = activation;
    step.type = node.type;
    step.status = status;
    return step;
  }

  void StartStepNow(StartStep step) {
    started_now_.insert({step.node, step.activation});
    run_.steps[step.node] = StepState{step.activation, step.status, json(), "", now_ms_,
                                      step.reserved_usd, step.reserved_tokens};
    run_.reserved_usd += step.reserved_usd;
    run_.reserved_tokens += step.reserved_tokens;
    Emit(std::move(step));
  }

  void FinishStepNow(const std::string& node, int activation, const std::string& status, json output,
                     const std::string& error) {
    auto& state = run_.steps[node];
    // What it was handed is no longer held: a step published later in this transition gets it.
    run_.reserved_usd -= state.reserved_usd;
    run_.reserved_tokens -= state.reserved_tokens;
    state.reserved_usd = 0;
    state.reserved_tokens = 0;
    state.status = status;
    state.output = output;
    state.error = error;
    Emit(FinishStep{node, activation, status, std::move(output), error});
    // A wait entered by an earlier transition has a timer; unless that timer is what ended it,
    // it is no longer needed.
    if (def_.node(node).type == NodeType::wait && status != "timed_out" && !started_now_.count({node, activation})) {
      Emit(CancelTimer{node, activation, TimerPurpose::wait_timeout});
    }
  }

  void Cursor(const std::string& node, int activation, const std::string& status) {
    run_.cursor = node;
    run_.cursor_activation = activation;
    run_.status = status;
    Emit(MoveCursor{node, activation, status});
  }

  void End(const std::string& status, const std::string& reason) {
    if (ended_) return;
    ended_ = true;
    run_.status = status;
    Emit(FinishRun{status, reason});
    json detail = {{"status", status}};
    if (!reason.empty()) detail["reason"] = reason;
    Emit(Audit{status == "succeeded" ? "workflow_done" : "workflow_failed", detail});
  }

  static const char* OpName(CompareOp op) {
    switch (op) {
      case CompareOp::eq: return "==";
      case CompareOp::ne: return "!=";
      case CompareOp::lt: return "<";
      case CompareOp::le: return "<=";
      case CompareOp::gt: return ">";
      case CompareOp::ge: return ">=";
      case CompareOp::exists: return "exists";
      case CompareOp::in: return "in";
    }
    return "?";
  }

  TransitionResult Ignore(std::string why) { return TransitionResult{{}, std::move(why)}; }
  TransitionResult Done() { return TransitionResult{std::move(actions_), ""}; }
  void Emit(Action action) { actions_.push_back(std::move(action)); }

  const Definition& def_;
  RunState run_;
  int64_t now_ms_;
  double jitter_;
  std::vector<Action> actions_;
  std::set<int64_t> consumed_;
  std::set<std::pair<std::string, int>> started_now_;  // steps this transition started
  bool ended_ = false;
};

template <typename T>
bool Order(const T& a, CompareOp op, const T& b) {
  switch (op) {
    case CompareOp::lt: return a < b;
    case CompareOp::le: return a <= b;
    case CompareOp::gt: return a > b;
    case CompareOp::ge: return a >= b;
    default: return false;
  }
}

bool Compare(const json& actual, CompareOp op, const json& expected) {
  switch (op) {
    case CompareOp::exists: return !actual.is_null();
    case CompareOp::eq: return actual == expected;
    case CompareOp::ne: return actual != expected;
    case CompareOp::in:
      return expected.is_array() && std::find(expected.begin(), expected.end(), actual) != expected.end();
    default: break;
  }
  // Orderings compare numbers with numbers and strings with strings; anything else is false.
  if (actual.is_number() && expected.is_number()) return Order(actual.get<double>(), op, expected.get<double>());
  if (actual.is_string() && expected.is_string()) {
    return Order(actual.get_ref<const std::string&>(), op, expected.get_ref<const std::string&>());
  }
  return false;
}

json Resolve(const json& document, const std::string& pointer) {
  try {
    const json::json_pointer ptr(pointer);
    if (!document.contains(ptr)) return json();
    return document.at(ptr);
  } catch (const json::exception&) {
    return json();
  }
}

json::json_pointer Pointer(const std::string& text) {
  try {
    return json::json_pointer(text);
  } catch (const json::exception&) {
    throw std::invalid_argument("bad pointer ${" + text + "}");
  }
}

// "${/a/b}" must resolve; "${/a/b?}" may not, and is then null (or "" inside a longer text).
json Lookup(const json& document, const std::string& reference) {
  const bool optional = !reference.empty() && reference.back() == '?';
  const std::string pointer = optional ? reference.substr(0, reference.size() - 1) : reference;
  const auto ptr = Pointer(pointer);
  if (document.contains(ptr)) return document.at(ptr);
  if (optional) return json();
  throw std::invalid_argument("${" + pointer + "} resolves to nothing");
}

json RenderText(const std::string& text, const json& document) {
  // Exactly one reference: the value itself, of any type.
  if (text.size() > 3 && text.rfind("${", 0) == 0 && text.find('}') == text.size() - 1) {
    return Lookup(document, text.substr(2, text.size() - 3));
  }
  std::string out;
  size_t pos = 0;
  for (size_t open; (open = text.find("${", pos)) != std::string::npos;) {
    const size_t close = text.find('}', open + 2);
    if (close == std::string::npos) break;
    const json value = Lookup(document, text.substr(open + 2, close - open - 2));
    out += text.substr(pos, open - pos);
    if (!value.is_null()) out += value.is_string() ? value.get<std::string>() : value.dump();
    pos = close + 1;
  }
  return out + text.substr(pos);
}

}  // namespace

const char* TimerPurposeName(TimerPurpose purpose) {
  return purpose == TimerPurpose::wait_timeout ? "wait_timeout" : "retry_backoff";
}

bool IsFinalRunStatus(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled" || status == "timed_out";
}

json RunDocument(const RunState& run) {
  json steps = json::object();
  for (const auto& [node, state] : run.steps) {
    if (state.activation == 0) continue;
    steps[node] = {{"status", state.status}, {"activation", state.activation},
                   {"output", state.output}, {"error", state.error}};
  }
  return {{"parameters", run.parameters}, {"run", {{"id", run.id}, {"tenant", run.tenant}}},
          {"steps", steps}};
}

json Render(const json& template_value, const json& document) {
  if (template_value.is_string()) return RenderText(template_value.get<std::string>(), document);
  if (template_value.is_array()) {
    json out = json::array();
    for (const auto& item : template_value) out.push_back(Render(item, document));
    return out;
  }
  if (template_value.is_object()) {
    json out = json::object();
    for (const auto& [key, item] : template_value.items()) out[key] = Render(item, document);
    return out;
  }
  return template_value;
}

Check Evaluate(const Assertion& assertion, const json& document) {
  Check check{assertion, Resolve(document, assertion.path), false};
  check.ok = Compare(check.actual, assertion.op, assertion.value);
  return check;
}

TransitionResult Transition(const Definition& definition, const RunState& run, const Event& event,
                            int64_t now_ms, double jitter_sample) {
  return Machine(definition, run, now_ms, jitter_sample).Apply(event);
}

}  // namespace cogo::workflow
