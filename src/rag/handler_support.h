// Small pieces the rag and kg handlers share: the provider call control from a handler's stop
// token and deadline, and the usage record of a handler that commits its own outcome.
#pragma once

#include <chrono>
#include <string>

#include "cogo/bus/message.h"
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

// What the worker would record for a completed message, for handlers that commit themselves.
inline bus::UsageRecord UsageOf(const runtime::HandlerContext& ctx, const policy::Usage& usage) {
  const auto* a = ctx.assignment;
  return bus::UsageRecord{ctx.message.lease, ctx.message.tenant, ctx.message.route,
                          a != nullptr ? a->agent_id : "", a != nullptr ? a->version : "",
                          a != nullptr ? a->model : "", usage, "completed"};
}

}  // namespace cogo::rag
