#include "cogo/policy/assignment.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace cogo::policy {
namespace {

using nlohmann::json;
using Code = AssignmentErrorCode;

// Reading one field either stores the value or leaves the first error here; later reads are
// skipped once an error is set, so the caller reports fields in wire order.
class FieldReader {
 public:
  [[nodiscard]] bool failed() const { return error_.has_value(); }
  [[nodiscard]] AssignmentError TakeError() { return std::move(*error_); }

  void Fail(std::string field, Code code, std::string message) {
    if (!error_) error_ = AssignmentError{std::move(field), code, std::move(message)};
  }

  // Returns the member, or nullptr (after recording `missing`) when absent.
  const json* Member(const json& object, const char* key, const std::string& path) {
    if (failed()) return nullptr;
    const auto it = object.find(key);
    if (it == object.end()) {
      Fail(path, Code::missing, "required field is absent");
      return nullptr;
    }
    return &*it;
  }

  const json* Object(const json& object, const char* key, const std::string& path) {
    const json* value = Member(object, key, path);
    if (value != nullptr && !value->is_object()) {
      Fail(path, Code::wrong_type, std::string("expected an object, got ") + value->type_name());
      return nullptr;
    }
    return value;
  }

  std::string String(const json& object, const char* key, const std::string& path) {
    const json* value = Member(object, key, path);
    if (value == nullptr) return {};
    if (!value->is_string()) {
      Fail(path, Code::wrong_type, std::string("expected a string, got ") + value->type_name());
      return {};
    }
    std::string text = value->get<std::string>();
    if (text.empty()) Fail(path, Code::empty, "must not be an empty string");
    return text;
  }

  // An integer in [min, max]. Floats (even 1.0) are wrong_type: counts are never fractional.
  int64_t Integer(const json& object, const char* key, const std::string& path, int64_t min,
                  int64_t max) {
    const json* value = Member(object, key, path);
    if (value == nullptr) return 0;
    if (!value->is_number_integer()) {
      Fail(path, Code::wrong_type,
           std::string("expected an integer, got ") +
               (value->is_number_float() ? "a fractional number" : value->type_name()));
      return 0;
    }
    // Above INT64_MAX nlohmann stores an unsigned; compare before converting.
    if (value->is_number_unsigned() &&
        value->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      Fail(path, Code::out_of_range, "must be at most " + std::to_string(max));
      return 0;
    }
    const auto number = value->get<int64_t>();
    if (number < min || number > max) {
      Fail(path, Code::out_of_range,
           "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
               std::to_string(number));
      return 0;
    }
    return number;
  }

  double PositiveNumber(const json& object, const char* key, const std::string& path) {
    const json* value = Member(object, key, path);
    if (value == nullptr) return 0.0;
    if (!value->is_number()) {
      Fail(path, Code::wrong_type, std::string("expected a number, got ") + value->type_name());
      return 0.0;
    }
    const auto number = value->get<double>();
    if (!std::isfinite(number) || number <= 0.0) {
      Fail(path, Code::out_of_range, "must be a positive number");
      return 0.0;
    }
    return number;
  }

 private:
  std::optional<AssignmentError> error_;
};

bool HasValue(const json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && !it->is_null();
}

AssignmentResult FromEnvelopeValue(const json& envelope) {
  if (!envelope.is_object()) {
    return AssignmentError{"__assignment", Code::wrong_type,
                           std::string("expected an object, got ") + envelope.type_name()};
  }
  FieldReader read;
  AssignmentEnvelope out;
  out.agent_id = read.String(envelope, "agent_id", "agent_id");
  out.version = read.String(envelope, "version", "version");
  out.model = read.String(envelope, "model", "model");
  if (const json* budget = read.Object(envelope, "budget", "budget")) {
    out.budget.max_cost_usd = read.PositiveNumber(*budget, "maxCostUsd", "budget.maxCostUsd");
    out.budget.max_tokens = read.Integer(*budget, "maxTokens", "budget.maxTokens", 1,
                                         std::numeric_limits<int64_t>::max());
  }
  out.ttl =
      std::chrono::milliseconds(read.Integer(envelope, "ttl_ms", "ttl_ms", 1, kMaxTtl.count()));
  // Optional fields: absent and null both mean "not given" (JSON producers often emit null).
  if (!read.failed() && HasValue(envelope, "issued_at")) {
    const int64_t ms = read.Integer(envelope, "issued_at", "issued_at", 0, kMaxIssuedAtMs);
    out.issued_at = TimePoint(std::chrono::milliseconds(ms));
  }
  if (!read.failed() && HasValue(envelope, "target")) {
    if (const json* target = read.Object(envelope, "target", "target")) {
      Target route;
      route.service = read.String(*target, "service", "target.service");
      route.role = read.String(*target, "role", "target.role");
      out.target = std::move(route);
    }
  }
  if (read.failed()) return read.TakeError();
  return out;
}

std::optional<json> ParseJson(std::string_view text) {
  json value = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::nullopt;
  return value;
}

}  // namespace

std::string_view ErrorCodeName(AssignmentErrorCode code) {
  switch (code) {
    case Code::invalid_json: return "invalid_json";
    case Code::missing_assignment: return "missing_assignment";
    case Code::missing: return "missing";
    case Code::wrong_type: return "wrong_type";
    case Code::empty: return "empty";
    case Code::out_of_range: return "out_of_range";
  }
  return "unknown";
}

std::string AssignmentError::ToString() const {
  return field + ": " + std::string(ErrorCodeName(code)) + ": " + message;
}

AssignmentResult ParseAssignment(std::string_view payload_json) {
  const std::optional<json> payload = ParseJson(payload_json);
  if (!payload) return AssignmentError{"payload", Code::invalid_json, "payload is not valid JSON"};
  if (!payload->is_object()) {
    return AssignmentError{"payload", Code::wrong_type,
                           std::string("expected an object, got ") + payload->type_name()};
  }
  const auto it = payload->find("__assignment");
  if (it == payload->end()) {
    return AssignmentError{"__assignment", Code::missing_assignment, "payload has no __assignment"};
  }
  return FromEnvelopeValue(*it);
}

AssignmentResult ParseAssignmentEnvelope(std::string_view envelope_json) {
  const std::optional<json> envelope = ParseJson(envelope_json);
  if (!envelope) {
    return AssignmentError{"__assignment", Code::invalid_json, "envelope is not valid JSON"};
  }
  return FromEnvelopeValue(*envelope);
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
