// The model-provider interface: chat completions and embeddings behind one abstract class, the
// request/response values, and ProviderError, the one exception every provider throws.
// Thread-safety: implementations must allow concurrent Chat/Embed calls from many threads.
// A request can be cancelled through its stop_token or bounded by its deadline.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "cogo/policy/usage.h"

namespace cogo::providers {

using Deadline = std::chrono::steady_clock::time_point;

// Prices a call in USD from its token counts (the policy price table supplies one). Providers
// without a pricer leave Usage::cost_usd at 0.
using Pricer = std::function<double(const std::string& model, int64_t input_tokens,
                                    int64_t output_tokens)>;

// What lets a worker stop a call: a stop request or a deadline (whichever comes first) aborts
// the call, including its retry waits.
struct CallControl {
  std::stop_token stop;                // default: never stops
  std::optional<Deadline> deadline;    // default: only the provider's own timeouts apply
};

struct ChatMessage {
  std::string role;     // "system" | "user" | "assistant" (passed through as given)
  std::string content;
};

struct ChatRequest {
  std::vector<ChatMessage> messages;
  std::string model;
  std::optional<int> max_tokens;       // omitted from the wire when unset
  std::optional<double> temperature;   // omitted from the wire when unset
  CallControl control;
};

struct ChatResponse {
  std::string content;
  std::string finish_reason;           // "stop", "length", ... as the provider reports it
  policy::Usage usage;
  bool usage_reported = true;          // false when the server sent no usage (tokens are 0)
  std::string model;                   // the model that answered, as reported
};

struct EmbedRequest {
  std::vector<std::string> inputs;
  std::string model;
  CallControl control;
};

struct EmbedResponse {
  std::vector<std::vector<float>> vectors;  // one per input, in input order
  policy::Usage usage;                 // input_tokens only
  bool usage_reported = true;
  std::string model;
};

enum class ProviderErrorKind {
  kRateLimited,   // 429 after retries
  kServerError,   // 5xx after retries
  kBadResponse,   // unparseable or incomplete body: never retried
  kTimeout,       // connect/read timeout or the call's deadline passed
  kUnreachable,   // connection refused, DNS, TLS handshake
  kClientError,   // 4xx other than 429 (bad key, unknown model, bad request)
  kCancelled,     // the call's stop_token was triggered
};

// "rate_limited", "server_error", "bad_response", "timeout", "unreachable", "client_error",
// "cancelled".
[[nodiscard]] std::string_view ToString(ProviderErrorKind kind);

// Thrown by every provider call that does not produce a response. what() never contains an
// API key or request content.
class ProviderError : public std::runtime_error {
 public:
  ProviderError(ProviderErrorKind kind, const std::string& message, int http_status = 0,
                int attempts = 1);

  [[nodiscard]] ProviderErrorKind kind() const { return kind_; }
  // Worth retrying later (by the bus): rate limits, 5xx, timeouts, unreachable.
  [[nodiscard]] bool retryable() const;
  [[nodiscard]] int http_status() const { return http_status_; }  // 0 when no HTTP answer
  [[nodiscard]] int attempts() const { return attempts_; }        // HTTP attempts made

 private:
  ProviderErrorKind kind_;
  int http_status_;
  int attempts_;
};

class ModelProvider {
 public:
  virtual ~ModelProvider() = default;

  // Throws ProviderError.
  virtual ChatResponse Chat(const ChatRequest& request) = 0;
  virtual EmbedResponse Embed(const EmbedRequest& request) = 0;
  // A short name for logs and metrics, e.g. "openai-compatible".
  [[nodiscard]] virtual std::string_view name() const = 0;
};

}  // namespace cogo::providers
