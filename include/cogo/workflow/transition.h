// The workflow engine's one decision: given a definition, a run's state and one event (the run
// started, a step's message finished, a timer fired, an external event arrived), what changes.
// A pure function — no I/O, time passed in — so every rule is a row of a table test; the engine
// (engine.h) only loads the state, calls Transition and writes the actions in one transaction.
//
// The run's document, which templates and assertions address with JSON pointers:
//   {"parameters": {...}, "run": {"id", "tenant"},
//    "steps": {"<node>": {"status", "activation", "output", "error"}}}   (latest activation)
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "cogo/workflow/definition.h"

namespace cogo::workflow {

// A step's latest activation.
struct StepState {
  int activation = 0;
  std::string status;  // running, waiting, succeeded, failed, timed_out, cancelled
  nlohmann::json output;
  std::string error;
  int64_t started_ms = 0;  // database time, ms since the epoch
  double reserved_usd = 0;      // what the step was handed while it runs (released when it ends)
  int64_t reserved_tokens = 0;
};

struct Signal {  // an external event delivered to the run and not yet consumed
  int64_t id = 0;
  std::string name;
  nlohmann::json data;
  int64_t created_ms = 0;  // database time, ms since the epoch
};

struct RunState {
  int64_t id = 0;
  std::string tenant;
  std::string status;  // running, waiting, or a final status
  std::string cursor;  // empty before the start event
  int cursor_activation = 0;
  nlohmann::json parameters = nlohmann::json::object();
  std::map<std::string, StepState> steps;
  int total_activations = 0;
  // Budget: limits from the run; spent from the usage of its finished steps' messages; reserved
  // is what running steps were handed and have not reported yet.
  std::optional<double> max_cost_usd;
  std::optional<int64_t> max_tokens;
  double spent_usd = 0;
  int64_t spent_tokens = 0;
  double reserved_usd = 0;
  int64_t reserved_tokens = 0;
  std::vector<Signal> signals;
};

enum class TimerPurpose { wait_timeout, retry_backoff };
[[nodiscard]] const char* TimerPurposeName(TimerPurpose purpose);

struct StartEvent {};
struct StepFinishedEvent {
  std::string node;
  int activation = 0;
  std::string message_status;  // done, failed, dead, cancelled
  nlohmann::json result;       // the message's result document (null when none)
  std::string error;           // the message's last_error
  double spent_usd = 0;        // the usage this step's message recorded
  int64_t spent_tokens = 0;
};
struct TimerEvent {
  std::string node;
  int activation = 0;
  TimerPurpose purpose = TimerPurpose::wait_timeout;
};
struct SignalEvent {
  int64_t signal_id = 0;
};
using Event = std::variant<StartEvent, StepFinishedEvent, TimerEvent, SignalEvent>;

// Actions, written in order by the engine.
struct FinishStep {  // the step row's outcome (exactly once: only from running/waiting)
  std::string node;
  int activation = 0;
  std::string status;
  nlohmann::json output;  // null: none
  std::string error;
};
struct StartStep {  // a new step row; publish/notify steps carry the message to publish
  std::string node;
  int activation = 0;
  NodeType type = NodeType::end;
  std::string status;  // running or waiting
  nlohmann::json input;  // publish/notify: the payload (with __assignment); else null
  std::string service;   // publish/notify: the route
  std::string role;
  int max_attempts = 0;
  double reserved_usd = 0;
  int64_t reserved_tokens = 0;
};
struct ScheduleTimer {
  std::string node;
  int activation = 0;
  TimerPurpose purpose = TimerPurpose::wait_timeout;
  std::chrono::milliseconds delay{0};
};
// A wait satisfied before its timeout: its timer message would only wait in the queue and then
// wake the run for nothing, so the engine cancels it.
struct CancelTimer {
  std::string node;
  int activation = 0;
  TimerPurpose purpose = TimerPurpose::wait_timeout;
};
struct ConsumeSignal {
  int64_t signal_id = 0;
  std::string node;
  int activation = 0;
};
// Also sets the run's status: `waiting` on an event Wait or a Retry backoff (on something outside
// the run), `running` on a Wait for its own steps.
struct MoveCursor {
  std::string node;
  int activation = 0;
  std::string status;
};
struct FinishRun {
  std::string status;  // succeeded, failed, timed_out
  std::string reason;  // empty on success
};
struct Audit {  // a bus_events row on the causing message's trail
  std::string event;    // workflow_started, step_started, step_done, ...
  nlohmann::json detail;
};
using Action = std::variant<FinishStep, StartStep, ScheduleTimer, CancelTimer, ConsumeSignal, MoveCursor,
                            FinishRun, Audit>;

struct TransitionResult {
  std::vector<Action> actions;
  std::string ignored;  // non-empty: the event was stale or a duplicate; why (no actions)
};

// `now_ms`: the database's time (ms since the epoch). `jitter_sample` in [0, 1) spreads Retry
// backoffs (the engine draws it; tests pin it).
[[nodiscard]] TransitionResult Transition(const Definition& definition, const RunState& run,
                                          const Event& event, int64_t now_ms,
                                          double jitter_sample = 0.5);

// The run's document (see the top of this file).
[[nodiscard]] nlohmann::json RunDocument(const RunState& run);

// Substitutes "${/pointer}" in every string of `template_value` against `document`: a string
// that is exactly one reference becomes the referenced value (any type), references inside a
// longer string are written as text. "${/pointer?}" may resolve to nothing (null, or "" in a
// text); otherwise a missing value throws std::invalid_argument naming the pointer.
[[nodiscard]] nlohmann::json Render(const nlohmann::json& template_value,
                                    const nlohmann::json& document);

// One assertion's verdict with the value it saw.
struct Check {
  Assertion assertion;
  nlohmann::json actual;  // null when the pointer resolves to nothing
  bool ok = false;
};
[[nodiscard]] Check Evaluate(const Assertion& assertion, const nlohmann::json& document);

[[nodiscard]] bool IsFinalRunStatus(const std::string& status);

}  // namespace cogo::workflow
