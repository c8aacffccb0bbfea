// The assignment envelope (`payload.__assignment`): who may run a message, on which model, with
// what budget and time-to-live. Owns parsing it from JSON text with a precise error per field,
// and writing it back. Plain values and pure functions: thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cogo::config {
class JsonObject;
}

namespace cogo::policy {

// Wall-clock instant. Policy code never reads a clock: callers pass `now` in.
using TimePoint = std::chrono::system_clock::time_point;

// Sanity bounds applied at parse time, before any policy table is consulted: values beyond them
// are mistakes, not policy. Tighter limits belong in the policy table.
inline constexpr std::chrono::milliseconds kMaxTtl = std::chrono::hours(24 * 7);
inline constexpr int64_t kMaxIssuedAtMs = 253402300799999;  // 9999-12-31T23:59:59.999Z

struct Budget {
  double max_cost_usd = 0.0;  // wire: budget.maxCostUsd, > 0
  int64_t max_tokens = 0;     // wire: budget.maxTokens, a positive integer
};

// The route the work is handed to. Both parts are non-empty.
struct Target {
  std::string service;
  std::string role;

  [[nodiscard]] std::string Route() const { return service + "/" + role; }  // "service/role"
  bool operator==(const Target&) const = default;
};

struct AssignmentEnvelope {
  std::string agent_id;                // wire: agent_id, non-empty
  std::string version;                 // wire: version, non-empty
  std::string model;                   // wire: model, non-empty
  Budget budget;                       // wire: budget { maxCostUsd, maxTokens }
  std::chrono::milliseconds ttl{0};    // wire: ttl_ms, integer in (0, kMaxTtl]
  std::optional<TimePoint> issued_at;  // wire: issued_at, integer ms since the Unix epoch
  std::optional<Target> target;        // wire: target { service, role }
};

enum class AssignmentErrorCode {
  invalid_json,        // the text is not JSON at all
  missing_assignment,  // the payload has no `__assignment` key
  missing,             // a required field is absent
  wrong_type,          // e.g. a string where a number belongs, 1.5 or 1.0 for tokens
  empty,               // a required string is ""
  out_of_range,        // zero/negative budget, ttl over kMaxTtl, negative issued_at, ...
  invalid_name,        // a target service or role with a '/' (bus::ValidRouteName)
};

// Stable snake_case name ("missing", "wrong_type", ...) for logs and audit rows.
[[nodiscard]] std::string_view ErrorCodeName(AssignmentErrorCode code);

struct AssignmentError {
  // Dotted path relative to the envelope ("budget.maxTokens", "target.role"). The envelope
  // itself is "__assignment"; a payload that is not a JSON object is "payload".
  std::string field;
  AssignmentErrorCode code = AssignmentErrorCode::invalid_json;
  std::string message;  // one readable line; never echoes string values back

  // "<field>: <code>: <message>", ready for last_error.
  [[nodiscard]] std::string ToString() const;
};

// Either a valid envelope or the first error found (fields are checked in wire order).
class [[nodiscard]] AssignmentResult {
 public:
  AssignmentResult(AssignmentEnvelope envelope) : value_(std::move(envelope)) {}  // NOLINT
  AssignmentResult(AssignmentError error) : value_(std::move(error)) {}           // NOLINT

  [[nodiscard]] bool ok() const { return value_.index() == 0; }
  // Preconditions: ok() for envelope(), !ok() for error(); violating them throws.
  [[nodiscard]] const AssignmentEnvelope& envelope() const { return std::get<0>(value_); }
  [[nodiscard]] const AssignmentError& error() const { return std::get<1>(value_); }

 private:
  std::variant<AssignmentEnvelope, AssignmentError> value_;
};

// Parses a whole message payload (a JSON object) and the envelope at its `__assignment` key.
// Unknown keys inside the envelope are ignored so that newer producers can add fields; the
// optional `issued_at` and `target` may be absent or null, required fields may not be null.
[[nodiscard]] AssignmentResult ParseAssignment(std::string_view payload_json);

// Parses the envelope object itself (the value of `__assignment`).
[[nodiscard]] AssignmentResult ParseAssignmentEnvelope(std::string_view envelope_json);

// The wire shapes of `budget` and `target` (config/json_reader.h), for readers that embed them
// (routing rules). They read only their own keys: the caller decides whether others may appear
// (Finish). Throw config::JsonError.
[[nodiscard]] Budget ReadBudget(const config::JsonObject& budget);
[[nodiscard]] Target ReadTarget(const config::JsonObject& target);

// The envelope as a compact JSON object with the wire names, for the orchestrator to embed at
// `payload.__assignment`. Optional fields are written only when set. Round-trips through
// ParseAssignmentEnvelope for every envelope that parses.
[[nodiscard]] std::string ToJson(const AssignmentEnvelope& envelope);

}  // namespace cogo::policy
