// Edge ingress validation: the body of `POST /functions/v1/orchestrator-chat` checked before
// anything is written — size cap, JSON nesting cap (refused while parsing, before the document
// is built), required fields and their types, no unknown or repeated fields — and
// the stable tenant -> shard hash. Pure functions of their arguments: thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "cogo/config/names.h"

namespace cogo::edge {

struct IngressLimits {
  size_t max_body_bytes = 64 * 1024;  // larger bodies: 413 body_too_large
  int max_depth = 16;                 // deeper nesting ({ or [): 400 too_deep
  size_t max_tenant_bytes = config::kTenantName.max_bytes;  // tenant: [A-Za-z0-9._-]{1,128}
  size_t max_intent_bytes = config::kIntentName.max_bytes;  // intent: [a-z0-9._-]{1,64}
};

// A validated request: `payload_json` is the request's payload object, compact.
struct IngressRequest {
  std::string tenant;
  std::string intent;
  std::string payload_json;
};

// A refusal a client can cause: HTTP status, machine-readable code and a human sentence that
// never echoes request content back. Codes: body_too_large (413), unsupported_media_type (415),
// malformed_json, too_deep, not_an_object, missing_field, wrong_type, invalid_field,
// unknown_field, duplicate_field (400).
struct Rejection {
  int status = 400;
  std::string error;
  std::string message;
};

class [[nodiscard]] IngressResult {
 public:
  IngressResult(IngressRequest request) : value_(std::move(request)) {}  // NOLINT
  IngressResult(Rejection rejection) : value_(std::move(rejection)) {}   // NOLINT
  [[nodiscard]] bool ok() const { return value_.index() == 0; }
  [[nodiscard]] const IngressRequest& request() const { return std::get<0>(value_); }
  [[nodiscard]] const Rejection& rejection() const { return std::get<1>(value_); }

 private:
  std::variant<IngressRequest, Rejection> value_;
};

// `content_type` may be empty (treated as JSON); anything but application/json is 415.
// `payload` may be absent (an empty object) but must be an object when present.
[[nodiscard]] IngressResult ParseIngress(std::string_view body, std::string_view content_type,
                                         const IngressLimits& limits);

}  // namespace cogo::edge
