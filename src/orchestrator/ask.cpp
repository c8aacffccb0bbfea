#include "orchestrator/ask.h"

#include "cogo/config/json_reader.h"

namespace cogo::orchestrator {

using config::JsonReason;

constexpr int kMaxDepth = 16;

std::variant<Ask, AskError> ParseAsk(const std::string& body, bool tenant_required, bool allow_plan,
                                     std::size_t max_bytes) {
  if (body.size() > max_bytes) return AskError{413, "body_too_large", "the body is too large"};
  try {
    const auto doc = config::JsonDocument::Parse(body, {.max_depth = kMaxDepth});
    const auto o = doc.root().AsObject();
    Ask ask;
    if (const auto tenant = o.Optional("tenant")) ask.tenant = tenant->AsName(config::kTenantName);
    if (const auto intent = o.Optional("intent")) ask.intent = intent->AsName(config::kIntentName);
    if (const auto payload = o.OptionalObject("payload")) ask.payload_json = payload->value().Dump();
    if (allow_plan) {
      if (const auto plan = o.OptionalObject("plan")) ask.plan_json = plan->value().Dump();
    }
    o.Finish();
    if (tenant_required && ask.tenant.empty()) o.FailAt("tenant", JsonReason::missing_key, "required");
    if (ask.intent.empty() && !ask.plan_json) {
      o.FailAt("intent", JsonReason::missing_key, allow_plan ? "intent or plan is required" : "required");
    }
    if (!ask.intent.empty() && ask.plan_json) {
      o.FailAt("plan", JsonReason::invalid_value, "give intent or plan, not both");
    }
    return ask;
  } catch (const config::JsonError& e) {
    auto refusal = config::ToRequestError(e);
    return AskError{400, std::move(refusal.code), std::move(refusal.message)};
  }
}

}  // namespace cogo::orchestrator
