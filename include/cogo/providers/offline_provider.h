// DeterministicOfflineProvider: NOT a model. A stand-in for development and tests that answers
// every chat with "[offline-deterministic] ..." text derived only from the request, counts
// tokens as whitespace-separated words, and embeds text as hash-seeded unit vectors (a sum of
// per-word vectors, so texts sharing words land close together). Same input, same output.
// Thread-safe: no mutable state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cogo/providers/provider.h"

namespace cogo::providers {

struct OfflineProviderOptions {
  size_t embedding_dimension = 64;  // length of every vector; must be > 0
  Pricer pricer;                    // empty: Usage::cost_usd stays 0
};

class DeterministicOfflineProvider final : public ModelProvider {
 public:
  static constexpr std::string_view kReplyPrefix = "[offline-deterministic]";
  static constexpr std::string_view kDefaultModel = "offline-deterministic";

  // Throws std::invalid_argument when embedding_dimension is 0.
  explicit DeterministicOfflineProvider(OfflineProviderOptions options = {});

  // Reply: "[offline-deterministic] reply to: <last user message, up to 12 words> (digest
  // <16 hex>)", where the digest hashes the model and every message. input_tokens = words in
  // all messages; output_tokens = words in the reply; a max_tokens below that truncates the
  // reply to max_tokens words with finish_reason "length" (else "stop"). Throws ProviderError
  // kCancelled / kTimeout when the request's stop_token / deadline already fired.
  ChatResponse Chat(const ChatRequest& request) override;
  // One unit vector per input; input_tokens = words in all inputs.
  EmbedResponse Embed(const EmbedRequest& request) override;
  [[nodiscard]] std::string_view name() const override { return kDefaultModel; }

  // Words as this provider counts tokens: maximal runs of non-whitespace.
  [[nodiscard]] static int64_t CountWords(std::string_view text);
  // The embedding of one text (what Embed returns for it).
  [[nodiscard]] std::vector<float> EmbedText(std::string_view text) const;

 private:
  OfflineProviderOptions options_;
};

}  // namespace cogo::providers
