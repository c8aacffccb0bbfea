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
#include "cogo/runtime/worker.h"

namespace cogo::rag {

inline providers::CallControl ControlOf(const runtime::HandlerContext& ctx) {
  providers::CallControl control;
  control.stop = ctx.stop;
  if (ctx.deadline) {
    control.deadline = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           *ctx.deadline - std::chrono::system_clock::now());
  }
  return control;
}

// The assignment's model, or the permanent failure when there is no assignment or the model has
// no price (usage could not be metered).
inline std::variant<std::string, runtime::HandlerResult> PricedModel(const runtime::HandlerContext& ctx,
                                                                     const policy::PolicyTable& table) {
  if (ctx.assignment == nullptr) return runtime::HandlerResult::Fail("assignment_missing");
  const std::string& model = ctx.assignment->model;
  if (!policy::CostUsd(table.prices(), model, 0, 0)) {
    return runtime::HandlerResult::Fail("model_not_priced: " + model + " is not in the price table");
  }
  return model;
}

// A provider's failure as the message's: retried by the bus when it may pass, else permanent.
inline runtime::HandlerResult FromProviderError(const providers::ProviderError& e) {
  const std::string error = "provider_" + std::string(providers::ToString(e.kind())) + ": " + e.what();
  return e.retryable() ? runtime::HandlerResult::Retry(error) : runtime::HandlerResult::Fail(error);
}

// What the worker would record for a completed message, for handlers that commit themselves.
inline bus::UsageRecord UsageOf(const runtime::HandlerContext& ctx, const policy::Usage& usage) {
  const auto* a = ctx.assignment;
  return bus::UsageRecord{ctx.message.lease, ctx.message.tenant, ctx.message.route,
                          a != nullptr ? a->agent_id : "", a != nullptr ? a->version : "",
                          a != nullptr ? a->model : "", usage, "completed"};
}

}  // namespace cogo::rag
