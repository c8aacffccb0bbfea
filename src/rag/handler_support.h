// Small pieces the rag and kg handlers share: the provider call control from a handler's stop
// token and deadline, and the usage record of a handler that commits its own outcome.
#pragma once

#include <chrono>
#include <string>
#include <variant>

#include "cogo/bus/message.h"
#include "cogo/policy/metering.h"
#include "cogo/policy/policy_table.h"
#include "cogo/providers/provider.h"
#include "cogo/runtime/handler.h"
#include "cogo/usage/usage_log.h"

namespace cogo::rag {

inline providers::CallControl ControlOf(const runtime::HandlerContext& ctx) {
  providers::CallControl control;
  control.stop = ctx.stop;
  control.deadline = ctx.deadline;
  return control;
}

// The assignment's model, or the permanent failure when there is no assignment or the model has
// no price (usage could not be metered).
inline std::variant<std::string, runtime::HandlerResult> PricedModel(const runtime::HandlerContext& ctx,
                                                                     const policy::PolicyTable& table) {
  if (ctx.assignment == nullptr) return runtime::HandlerResult::Fail("assignment_missing");
  const std::string& model = ctx.assignment->model;
  if (!policy::CostUsd(table.prices(), model, 0, 0)) {
    return runtime::HandlerResult::Fail("model_not_priced", model + " is not in the price table");
  }
  return model;
}

// A provider's failure as the message's: retried by the bus when it may pass, else permanent.
inline runtime::HandlerResult FromProviderError(const providers::ProviderError& e) {
  const std::string reason = "provider_" + std::string(providers::ToString(e.kind()));
  return e.retryable() ? runtime::HandlerResult::Retry(reason, e.what())
                       : runtime::HandlerResult::Fail(reason, e.what());
}

// What the worker would record for a completed message, for handlers that commit themselves.
inline usage::UsageRecord UsageOf(const runtime::HandlerContext& ctx, const policy::Usage& usage) {
  return usage::RecordOf(ctx.message, ctx.assignment, usage, "completed");
}

}  // namespace cogo::rag
