#include "cogo/edge/ingress.h"

#include <nlohmann/json.hpp>

#include "cogo/config/json_reader.h"

namespace cogo::edge {
namespace {

using config::JsonReason;
using nlohmann::json;

Rejection Reject(int status, std::string error, std::string message) {
  return Rejection{status, std::move(error), std::move(message)};
}

}  // namespace

IngressResult ParseIngress(std::string_view body, std::string_view content_type,
                           const IngressLimits& limits) {
  if (body.size() > limits.max_body_bytes) {
    return Reject(413, "body_too_large",
                  "the body is larger than " + std::to_string(limits.max_body_bytes) + " bytes");
  }
  if (!content_type.empty() && content_type.substr(0, 16) != "application/json") {
    return Reject(415, "unsupported_media_type", "send the body as application/json");
  }
  try {
    const auto doc = config::JsonDocument::Parse(body, {.max_depth = limits.max_depth});
    const auto o = doc.root().AsObject();
    IngressRequest out;
    // A null tenant or intent is as good as none: the client forgot it.
    const auto tenant = o.Optional("tenant");
    const auto intent = o.Optional("intent");
    if (!tenant) o.FailAt("tenant", JsonReason::missing_key, "required");
    if (!intent) o.FailAt("intent", JsonReason::missing_key, "required");
    config::NameRule tenant_rule = config::kTenantName;
    config::NameRule intent_rule = config::kIntentName;
    tenant_rule.max_bytes = limits.max_tenant_bytes;
    intent_rule.max_bytes = limits.max_intent_bytes;
    out.tenant = tenant->AsName(tenant_rule);
    out.intent = intent->AsName(intent_rule);
    out.payload_json = "{}";
    if (const auto payload = o.OptionalObject("payload")) out.payload_json = payload->value().Dump();
    o.Finish();
    return out;
  } catch (const config::JsonError& e) {
    auto refusal = config::ToRequestError(e);
    return Reject(400, std::move(refusal.code), std::move(refusal.message));
  }
}

}  // namespace cogo::edge
