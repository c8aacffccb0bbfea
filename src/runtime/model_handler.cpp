#include "cogo/runtime/model_handler.h"

#include "cogo/policy/metering.h"

namespace cogo::runtime {

providers::CallControl ControlOf(const HandlerContext& ctx) {
  providers::CallControl control;
  control.stop = ctx.stop;
  control.deadline = ctx.deadline;
  return control;
}

std::variant<std::string, HandlerResult> PricedModel(const HandlerContext& ctx, const policy::PolicyTable& table) {
  if (ctx.assignment == nullptr) return HandlerResult::Fail("assignment_missing");
  const std::string& model = ctx.assignment->model;
  if (!policy::CostUsd(table.prices(), model, 0, 0)) {
    return HandlerResult::Fail("model_not_priced", model + " is not in the price table");
  }
  return model;
}

HandlerResult FromProviderError(const providers::ProviderError& e) {
  std::string reason = "provider_" + std::string(providers::ToString(e.kind()));
  return e.retryable() ? HandlerResult::Retry(std::move(reason), e.what())
                       : HandlerResult::Fail(std::move(reason), e.what());
}

HandlerResult ProviderFailure(const HandlerContext& ctx, const providers::ProviderError& e, spdlog::logger& logger) {
  logger.warn("message {}: provider {}: {}", ctx.message.lease.message_id, providers::ToString(e.kind()), e.what());
  return FromProviderError(e);
}

}  // namespace cogo::runtime
