// What the handlers that call a model provider share (chat, codegen, rag embed and query, kg
// build): the call's control from the handler's stop token and deadline, the assignment's model
// when it is priced, and a provider's failure as the message's. Pure functions but
// ProviderFailure, which also logs; thread-safe.
#pragma once

#include <string>
#include <variant>

#include <spdlog/logger.h>

#include "cogo/policy/policy_table.h"
#include "cogo/providers/provider.h"
#include "cogo/runtime/handler.h"

namespace cogo::runtime {

// Stops the call when the handler's stop token fires or its deadline passes.
[[nodiscard]] providers::CallControl ControlOf(const HandlerContext& ctx);

// The assignment's model, or the permanent failure when there is no assignment
// (assignment_missing) or the model has no price (model_not_priced: usage could not be metered).
[[nodiscard]] std::variant<std::string, HandlerResult> PricedModel(const HandlerContext& ctx,
                                                                   const policy::PolicyTable& table);

// A provider's failure as the message's, reason provider_<kind>: retried by the bus when it may
// pass (rate limits, 5xx, timeouts, unreachable), else permanent.
[[nodiscard]] HandlerResult FromProviderError(const providers::ProviderError& e);

// FromProviderError, after a warning on `logger` naming the message and the failure (what() never
// holds a key or request content).
[[nodiscard]] HandlerResult ProviderFailure(const HandlerContext& ctx, const providers::ProviderError& e,
                                            spdlog::logger& logger);

}  // namespace cogo::runtime
