// OpenAICompatibleProvider: chat and embeddings over the OpenAI HTTP wire format
// (`POST {base_url}/chat/completions`, `POST {base_url}/embeddings`), which OpenAI, Ollama,
// vLLM and the llama.cpp server all speak. Retries 408/429/5xx, timeouts and refused
// connections with capped backoff, honouring Retry-After; a malformed body is never retried.
// Thread-safe: the options are immutable after construction and every call opens its own
// connection, so one instance serves any number of threads.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "cogo/providers/provider.h"

namespace cogo::providers {

// Passed to OpenAIProviderOptions::on_retry before each wait, for logs and metrics.
struct RetryNotice {
  int failed_attempt = 0;            // 1-based attempt that just failed
  ProviderErrorKind kind{};          // why it failed
  int http_status = 0;               // 0 when there was no HTTP answer
  std::chrono::milliseconds delay{};  // the wait before the next attempt
  bool from_retry_after = false;     // delay came from the server's Retry-After (capped)
};

struct OpenAIProviderOptions {
  // scheme://host[:port][/path-prefix]; http or https. Examples: https://api.openai.com/v1,
  // http://127.0.0.1:11434/v1 (Ollama), http://127.0.0.1:8080/v1 (llama.cpp, vLLM).
  std::string base_url = "https://api.openai.com/v1";
  // Sent as `Authorization: Bearer <api_key>`; empty sends no Authorization header (local
  // servers). The caller reads it from the environment (COGO_OPENAI_API_KEY); never logged.
  std::string api_key;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds read_timeout{120'000};  // per attempt; also the write timeout
  int max_retries = 2;                              // attempts = 1 + max_retries
  std::chrono::milliseconds retry_base_delay{500};  // backoff after the first failure, doubling
  std::chrono::milliseconds retry_max_delay{20'000};  // caps backoff and Retry-After alike
  std::string ca_cert_path;          // empty: the system trust store (https only)
  Pricer pricer;                     // empty: Usage::cost_usd stays 0
  // Called on the calling thread before each retry wait; must be thread-safe when the
  // provider is shared between threads. Empty: silent.
  std::function<void(const RetryNotice&)> on_retry;
};

class OpenAICompatibleProvider final : public ModelProvider {
 public:
  // Throws std::invalid_argument on a base_url that is not http(s)://host[:port][/prefix] or
  // on negative retry counts.
  explicit OpenAICompatibleProvider(OpenAIProviderOptions options);

  // Both throw ProviderError; ProviderError::attempts() says how many HTTP requests were made.
  // An empty request model is a kClientError before any request.
  ChatResponse Chat(const ChatRequest& request) override;
  EmbedResponse Embed(const EmbedRequest& request) override;
  [[nodiscard]] std::string_view name() const override { return "openai-compatible"; }

  [[nodiscard]] const OpenAIProviderOptions& options() const { return options_; }

 private:
  // POSTs `body` to base path + `path` with retries; returns the 2xx response body.
  std::string PostWithRetries(const std::string& path, const std::string& body,
                              const CallControl& control, int* attempts_out) const;

  OpenAIProviderOptions options_;
  std::string scheme_host_port_;  // "https://api.openai.com"
  std::string path_prefix_;       // "/v1", or "" for none
};

}  // namespace cogo::providers
