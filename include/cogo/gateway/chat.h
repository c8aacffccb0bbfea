// The (gateway, chat) handler: a chat completion through a ModelProvider with the model the
// assignment names, bounded by the assignment (max_tokens capped by the budget, the worker's
// stop token and deadline passed to the call), usage priced from the policy price table and
// reported to the worker's UsageGuard. Result `{reply, model, usage, finish_reason}` + snippet.
// Thread-safe: the handler may run on many worker threads (providers are thread-safe).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/policy/policy_table.h"
#include "cogo/providers/provider.h"
#include "cogo/runtime/handler.h"

namespace cogo::gateway {

struct ChatOptions {
  int max_tokens = 1024;       // per reply, further capped by the assignment's maxTokens
  std::string system_prompt;   // prepended as a system message when not empty
  size_t max_input_bytes = 64 * 1024;
};

struct ChatInputError {
  std::string reason;  // invalid_input
  std::string detail;
};

// Pure: the provider request for a message payload `{..., "input": {...}}`. The input is
// `messages: [{role, content}]`, or `message` / `prompt` (one user turn); a top-level payload
// without `input` is read the same way.
[[nodiscard]] std::variant<providers::ChatRequest, ChatInputError> BuildChatRequest(
    const std::string& payload_json, const std::string& model, int max_tokens,
    const ChatOptions& options);

[[nodiscard]] runtime::Handler MakeChatHandler(std::shared_ptr<providers::ModelProvider> provider,
                                               std::shared_ptr<const policy::PolicyTable> policy,
                                               ChatOptions options,
                                               std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::gateway
