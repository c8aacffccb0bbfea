#include "cogo/policy/assignment.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "cogo/bus/keys.h"
#include "cogo/config/json_reader.h"

namespace cogo::policy {
namespace {

using nlohmann::json;
using Code = AssignmentErrorCode;
using config::JsonReason;

// Payloads come from the bus (jsonb: no duplicate keys); their nesting is the producer's business.
constexpr config::ParseOptions kPayload{.max_depth = std::numeric_limits<int>::max()};

// The envelope's fields in wire order; the first problem found is the one reported. Unknown keys
// are ignored so that newer producers can add fields.
AssignmentEnvelope ReadFields(const config::JsonObject& e) {
  AssignmentEnvelope out;
  out.agent_id = e.String("agent_id");
  out.version = e.String("version");
  out.model = e.String("model");
  out.budget = ReadBudget(e.Object("budget"));
  out.ttl = std::chrono::milliseconds(e.Int("ttl_ms", 1, kMaxTtl.count()));
  if (const auto issued_at = e.Optional("issued_at")) {
    out.issued_at = TimePoint(std::chrono::milliseconds(issued_at->AsInt(0, kMaxIssuedAtMs)));
  }
  if (const auto target = e.OptionalObject("target")) out.target = ReadTarget(*target);
  return out;
}

// `document` names an error about the whole text ("payload" or "__assignment").
AssignmentError ToError(const config::JsonError& e, const char* document) {
  const auto code = [&] {
    switch (e.reason()) {
      case JsonReason::missing_key: return Code::missing;
      case JsonReason::wrong_type: return Code::wrong_type;
      case JsonReason::empty: return Code::empty;
      case JsonReason::out_of_range: return Code::out_of_range;
      case JsonReason::invalid_name: return Code::invalid_name;
      default: return Code::invalid_json;  // malformed_json, duplicate_key; no other can occur
    }
  }();
  return {e.path().empty() ? document : e.path(), code, e.message()};
}

// `value` is the envelope (at "__assignment" in a payload, or a document of its own). Field
// paths are relative to it; an error about the envelope itself is "__assignment".
AssignmentResult FromEnvelopeValue(const config::JsonValue& value) {
  try {
    (void)value.AsObject();
    return ReadFields(value.WithPath("").AsObject());
  } catch (const config::JsonError& e) {
    return ToError(e, "__assignment");
  }
}

}  // namespace

Budget ReadBudget(const config::JsonObject& budget) {
  Budget out;
  out.max_cost_usd = budget.Double("maxCostUsd", config::DoubleRange::Positive());
  out.max_tokens = budget.Int("maxTokens", 1);
  return out;
}

Target ReadTarget(const config::JsonObject& target) {
  Target out;
  out.service = bus::ReadRouteName(target, "service");
  out.role = bus::ReadRouteName(target, "role");
  return out;
}

std::string_view ErrorCodeName(AssignmentErrorCode code) {
  switch (code) {
    case Code::invalid_json: return "invalid_json";
    case Code::missing_assignment: return "missing_assignment";
    case Code::missing: return "missing";
    case Code::wrong_type: return "wrong_type";
    case Code::empty: return "empty";
    case Code::out_of_range: return "out_of_range";
    case Code::invalid_name: return "invalid_name";
  }
  return "unknown";
}

std::string AssignmentError::ToString() const {
  return field + ": " + std::string(ErrorCodeName(code)) + ": " + message;
}

AssignmentResult ParseAssignment(std::string_view payload_json) {
  try {
    const auto doc = config::JsonDocument::Parse(payload_json, kPayload);
    const auto payload = doc.root().AsObject();
    return FromEnvelopeValue(payload.Required("__assignment"));
  } catch (const config::JsonError& e) {
    if (e.reason() == JsonReason::missing_key) {  // the envelope's own errors are caught inside
      return AssignmentError{"__assignment", Code::missing_assignment, "payload has no __assignment"};
    }
    return ToError(e, "payload");
  }
}

AssignmentResult ParseAssignmentEnvelope(std::string_view envelope_json) {
  try {
    const auto doc = config::JsonDocument::Parse(envelope_json, kPayload);
    return FromEnvelopeValue(doc.root());
  } catch (const config::JsonError& e) {
    return ToError(e, "__assignment");
  }
}

std::string ToJson(const AssignmentEnvelope& envelope) {
  json out = {
      {"agent_id", envelope.agent_id},
      {"version", envelope.version},
      {"model", envelope.model},
      {"budget",
       {{"maxCostUsd", envelope.budget.max_cost_usd}, {"maxTokens", envelope.budget.max_tokens}}},
      {"ttl_ms", envelope.ttl.count()},
  };
  if (envelope.issued_at) {
    out["issued_at"] = std::chrono::floor<std::chrono::milliseconds>(*envelope.issued_at)
                           .time_since_epoch()
                           .count();
  }
  if (envelope.target) {
    out["target"] = {{"service", envelope.target->service}, {"role", envelope.target->role}};
  }
  // Replace rather than throw on invalid UTF-8 from a caller-built envelope.
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace cogo::policy
