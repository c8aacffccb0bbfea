// A workflow definition: a graph of Publish, Wait, Retry, Gate, Notify and End nodes, loaded
// from `config/workflows/<id>.json` and validated strictly (every error names its path).
// Immutable once loaded; plain data, safe to share between threads. The file format is
// documented in docs/workflows.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "cogo/policy/backoff.h"

namespace cogo::workflow {

enum class NodeType { publish, wait, retry, gate, notify, end };
[[nodiscard]] const char* NodeTypeName(NodeType type);

// One comparison of a Gate or a condition Wait: the value at a JSON pointer into the run's
// document (see transition.h) against `value`.
enum class CompareOp { eq, ne, lt, le, gt, ge, exists, in };
struct Assertion {
  std::string path;  // JSON pointer, e.g. /steps/test/output/tests/failed
  CompareOp op = CompareOp::eq;
  nlohmann::json value;  // absent for exists; an array for in
};

// What a Publish step's `__assignment` says; the budget is filled in per step from what the run
// has left (capped by `max_cost_usd` / `max_tokens` when set).
struct AssignmentSpec {
  std::string agent_id;
  std::string version;
  std::string model;
  std::chrono::milliseconds ttl{0};
  std::optional<double> max_cost_usd;
  std::optional<int64_t> max_tokens;
};

enum class WaitFor { step, event, condition };

struct Node {
  std::string id;
  NodeType type = NodeType::end;
  std::string description;
  // Edges (node ids). Which ones a type has is checked by the loader.
  std::string next;          // publish, notify, wait (satisfied), retry (unused), gate (onPass)
  std::string on_fail;       // wait on a step that failed; gate fail; empty: the run fails
  std::string on_timeout;    // wait; empty: the run ends timed_out
  std::string on_exhausted;  // retry; empty: the run fails retry_exhausted
  // publish / notify
  std::string service;
  std::string role;
  nlohmann::json payload;  // template: strings "${/pointer}" are substituted
  std::optional<AssignmentSpec> assignment;
  int max_attempts = 3;
  std::string url;  // notify
  // wait
  WaitFor wait_for = WaitFor::step;
  std::string step;   // wait for this publish/notify node's message
  std::string event;  // wait for this external event name
  std::vector<Assertion> condition;
  std::chrono::milliseconds timeout{0};
  std::chrono::milliseconds lookback{0};  // event waits: events this old still count
  // retry: re-enter `target` after a backoff, at most `max_retries` times
  std::string target;
  int max_retries = 0;
  policy::BackoffParams backoff;
  // gate
  std::vector<Assertion> asserts;
  // end
  std::string end_status = "succeeded";  // succeeded | failed
  std::string end_reason;
};

// A parameter a run must (or may) be started with.
struct ParameterSpec {
  std::string type;  // string, integer, number, boolean, object, array
  bool required = true;
  size_t max_length = 0;  // strings; 0 = the body limit only
  std::string description;
};

struct Limits {
  std::optional<double> max_cost_usd;  // the run's budget over all its steps
  std::optional<int64_t> max_tokens;
  int max_activations = 100;  // every node entry counts; a guard against runaway loops
};

struct Definition {
  std::string id;   // the workflowId
  std::string description;
  std::string start;
  std::map<std::string, Node> nodes;
  std::map<std::string, ParameterSpec> parameters;
  Limits limits;
  // "access": "service_role": starting a run, sending it events and cancelling it need a
  // service_role token, and no routing rule may start it (the upgrade workflow steers agent
  // versions for every tenant). Default "any_token": a tenant acts on its own runs.
  bool service_role_only = false;
  std::string canonical_json;  // what the digest is computed over
  std::string digest;          // sha256 hex of canonical_json

  [[nodiscard]] const Node& node(const std::string& node_id) const;  // throws std::out_of_range
};

// The first error found; `path` is like `nodes.gen.timeout`.
struct DefinitionError {
  std::string path;
  std::string reason;   // machine-readable: unknown_key, undefined_node, unreachable_node, ...
  std::string message;  // one line for people
  [[nodiscard]] std::string ToString() const;
};

// Parses and validates the definition `id` (its file's text): unknown keys, types and ranges,
// undefined and unreachable nodes, a Wait without timeout, a Wait on a node that publishes
// nothing, an assignment without a budget, and cycles that no Retry node bounds.
[[nodiscard]] std::variant<Definition, DefinitionError> ParseDefinition(const std::string& id,
                                                                        const std::string& text);

// Loads every `*.json` file of `dir` (file name = workflow id). Throws std::runtime_error with
// the file and the DefinitionError when one is invalid: a bad file stops the daemon at start.
[[nodiscard]] std::map<std::string, Definition> LoadDefinitions(const std::string& dir);

// Checks a run's parameters against the definition; the error is like DefinitionError with a
// path under `parameters`.
[[nodiscard]] std::optional<DefinitionError> CheckParameters(const Definition& definition,
                                                             const nlohmann::json& parameters);

}  // namespace cogo::workflow
