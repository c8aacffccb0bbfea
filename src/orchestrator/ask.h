// The body of the brain's REST requests (POST /api/orchestrator/plan and /execute), read
// strictly before anything is decided: {tenant, intent, payload} or, for execute, a plan
// instead of an intent. A pure function: thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <variant>

namespace cogo::orchestrator {

struct Ask {
  std::string tenant;
  std::string intent;
  std::string payload_json = "{}";
  std::optional<std::string> plan_json;  // execute only: a plan instead of an intent
};

// A refusal: HTTP status, the API error code (the edge's vocabulary) and a message that never
// echoes the request's content.
struct AskError {
  int status;
  std::string error;
  std::string message;
};

[[nodiscard]] std::variant<Ask, AskError> ParseAsk(const std::string& body, bool tenant_required,
                                                   bool allow_plan, std::size_t max_bytes);

}  // namespace cogo::orchestrator
