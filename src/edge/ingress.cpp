#include "cogo/edge/ingress.h"

#include <nlohmann/json.hpp>

#include <cstdint>

namespace cogo::edge {
namespace {

using nlohmann::json;

bool IsTenantChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}
bool IsIntentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

template <typename Pred>
bool AllOf(std::string_view s, Pred pred) {
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

Rejection Reject(int status, std::string error, std::string message) {
  return Rejection{status, std::move(error), std::move(message)};
}

}  // namespace

int JsonDepth(std::string_view text, int limit) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > deepest) deepest = depth;
      if (deepest > limit) return deepest;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

IngressResult ParseIngress(std::string_view body, std::string_view content_type,
                           const IngressLimits& limits) {
  if (body.size() > limits.max_body_bytes) {
    return Reject(413, "body_too_large",
                  "the body is larger than " + std::to_string(limits.max_body_bytes) + " bytes");
  }
  if (!content_type.empty() && content_type.substr(0, 16) != "application/json") {
    return Reject(415, "unsupported_media_type", "send the body as application/json");
  }
  if (JsonDepth(body, limits.max_depth) > limits.max_depth) {
    return Reject(400, "too_deep",
                  "the body nests deeper than " + std::to_string(limits.max_depth) + " levels");
  }
  json doc = json::parse(body.begin(), body.end(), nullptr, false);
  if (doc.is_discarded()) return Reject(400, "malformed_json", "the body is not valid JSON");
  if (!doc.is_object()) return Reject(400, "not_an_object", "the body must be a JSON object");
  for (const auto& [key, value] : doc.items()) {
    if (key != "tenant" && key != "intent" && key != "payload") {
      return Reject(400, "unknown_field",
                    "unknown field (allowed: tenant, intent, payload)");
    }
  }
  IngressRequest out;
  for (const char* field : {"tenant", "intent"}) {
    const auto it = doc.find(field);
    if (it == doc.end() || it->is_null()) {
      return Reject(400, "missing_field", std::string(field) + " is required");
    }
    if (!it->is_string()) {
      return Reject(400, "wrong_type", std::string(field) + " must be a string");
    }
  }
  out.tenant = doc["tenant"].get<std::string>();
  out.intent = doc["intent"].get<std::string>();
  if (out.tenant.empty() || out.tenant.size() > limits.max_tenant_bytes ||
      !AllOf(out.tenant, IsTenantChar)) {
    return Reject(400, "invalid_field",
                  "tenant must be 1.." + std::to_string(limits.max_tenant_bytes) +
                      " characters of A-Z a-z 0-9 . _ -");
  }
  if (out.intent.empty() || out.intent.size() > limits.max_intent_bytes ||
      !AllOf(out.intent, IsIntentChar)) {
    return Reject(400, "invalid_field",
                  "intent must be 1.." + std::to_string(limits.max_intent_bytes) +
                      " characters of a-z 0-9 . _ -");
  }
  const auto payload = doc.find("payload");
  if (payload == doc.end() || payload->is_null()) {
    out.payload_json = "{}";
  } else if (!payload->is_object()) {
    return Reject(400, "wrong_type", "payload must be a JSON object");
  } else {
    out.payload_json = payload->dump();
  }
  return out;
}

int ShardForTenant(std::string_view tenant, int shards) {
  if (shards <= 1) return 0;
  uint64_t hash = 14695981039346656037ULL;
  for (char c : tenant) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return static_cast<int>(hash % static_cast<uint64_t>(shards));
}

bool ValidIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > 200) return false;
  return AllOf(key, [](char c) { return c >= 0x21 && c <= 0x7e; });
}

std::string ErrorJson(std::string_view error, std::string_view message) {
  return json{{"error", error}, {"message", message}}.dump();
}

}  // namespace cogo::edge
