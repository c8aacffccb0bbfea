#include "cogo/gateway/chat.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "cogo/policy/metering.h"
#include "cogo/runtime/model_handler.h"

namespace cogo::gateway {
namespace {

using nlohmann::json;

std::string Snippet(const std::string& text, size_t limit = 200) {
  if (text.size() <= limit) return text;
  size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  return text.substr(0, cut) + "...";
}

}  // namespace

std::variant<providers::ChatRequest, ChatInputError> BuildChatRequest(
    const std::string& payload_json, const std::string& model, int max_tokens,
    const ChatOptions& options) {
  json payload = json::parse(payload_json, nullptr, false);
  if (payload.is_discarded() || !payload.is_object()) {
    return ChatInputError{"invalid_input", "the payload is not a JSON object"};
  }
  const json& input = payload.contains("input") ? payload["input"] : payload;
  if (!input.is_object()) return ChatInputError{"invalid_input", "input must be an object"};
  providers::ChatRequest request;
  request.model = model;
  request.max_tokens = max_tokens;
  if (!options.system_prompt.empty()) request.messages.push_back({"system", options.system_prompt});
  size_t bytes = 0;
  if (const auto it = input.find("messages"); it != input.end()) {
    if (!it->is_array() || it->empty()) {
      return ChatInputError{"invalid_input", "input.messages must be a non-empty array"};
    }
    for (const auto& m : *it) {
      if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
          !m["content"].is_string()) {
        return ChatInputError{"invalid_input", "each of input.messages needs string role and content"};
      }
      const auto role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant") {
        return ChatInputError{"invalid_input", "a message role is system, user or assistant"};
      }
      request.messages.push_back({role, m["content"].get<std::string>()});
      bytes += request.messages.back().content.size();
    }
  } else {
    std::string text;
    for (const char* key : {"message", "prompt", "text"}) {
      if (const auto field = input.find(key); field != input.end() && field->is_string()) {
        text = field->get<std::string>();
        break;
      }
    }
    if (text.empty()) {
      return ChatInputError{"invalid_input",
                            "input needs messages [{role, content}] or a message/prompt/text string"};
    }
    bytes = text.size();
    request.messages.push_back({"user", std::move(text)});
  }
  if (bytes > options.max_input_bytes) {
    return ChatInputError{"invalid_input", "the input is larger than " +
                                               std::to_string(options.max_input_bytes) + " bytes"};
  }
  return request;
}

runtime::Handler MakeChatHandler(std::shared_ptr<providers::ModelProvider> provider,
                                 std::shared_ptr<const policy::PolicyTable> policy_table,
                                 ChatOptions options, std::shared_ptr<spdlog::logger> logger) {
  return [provider, policy_table, options, logger](runtime::HandlerContext& ctx) {
    using runtime::HandlerResult;
    auto priced = runtime::PricedModel(ctx, *policy_table);
    if (auto* refused = std::get_if<HandlerResult>(&priced)) return std::move(*refused);
    const auto& a = *ctx.assignment;
    const int max_tokens = static_cast<int>(
        std::min<int64_t>(options.max_tokens, std::max<int64_t>(1, a.budget.max_tokens)));
    auto built = BuildChatRequest(ctx.message.payload_json, a.model, max_tokens, options);
    if (const auto* error = std::get_if<ChatInputError>(&built)) {
      return HandlerResult::Fail(error->reason, error->detail);
    }
    auto request = std::get<providers::ChatRequest>(std::move(built));
    request.control = runtime::ControlOf(ctx);
    providers::ChatResponse response;
    try {
      response = provider->Chat(request);
    } catch (const providers::ProviderError& e) {
      return runtime::ProviderFailure(ctx, e, *logger);
    }
    // Priced from the policy table (not trusting a provider's own figure).
    auto usage = policy::PricedUsage(policy_table->prices(), a.model, response.usage.input_tokens,
                                     response.usage.output_tokens)
                     .value_or(response.usage);
    (void)ctx.usage.Report(usage);  // over budget: the runtime fails the message
    json result = {{"reply", response.content},
                   {"model", a.model},
                   {"provider", std::string(provider->name())},
                   {"provider_model", response.model},
                   {"finish_reason", response.finish_reason},
                   {"usage", {{"input_tokens", usage.input_tokens},
                              {"output_tokens", usage.output_tokens},
                              {"cost_usd", usage.cost_usd},
                              {"reported", response.usage_reported}}}};
    return HandlerResult::Complete(result.dump(), Snippet(response.content));
  };
}

}  // namespace cogo::gateway
