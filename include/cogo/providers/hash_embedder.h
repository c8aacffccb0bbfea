// HashEmbedder: NOT a learned model. An offline embedder for development, tests and the
// retrieval benchmark ("hash-v1"): the hashing trick (as scikit-learn's HashingVectorizer) over
// word unigrams, word bigrams and character 3- to 5-grams of each word, signed by a bit of the
// hash, with sublinear term weights, then L2-normalised. Texts that share words (or word parts:
// "index", "indexes", "indexing") have a high cosine; meaning without shared words is invisible
// to it. Same text, same vector on every machine. Thread-safe: no mutable state.
//
// Features of a text, after ASCII lower-casing (a token is a run of ASCII letters and digits or
// of non-ASCII bytes, so UTF-8 words stay whole):
//   word unigram          weight 1.0   (a short English stop-word list is skipped: without IDF
//                                       "the" and "of" would dominate every vector)
//   word bigram           weight 0.5   (adjacent non-stop words)
//   char n-grams of <w>   n = 3..5, each 1/sqrt(grams of the word): together as heavy as the word
// Each feature's count c becomes 1 + ln(c). Feature -> FNV-1a 64-bit hash -> index h % dim, sign
// from the top bit. A text with no tokens is the zero vector.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "cogo/providers/provider.h"

namespace cogo::providers {

class HashEmbedder final : public ModelProvider {
 public:
  // The model name the offline embedder answers to (the indexing workflow's assignment model).
  static constexpr std::string_view kModel = "offline-embed";
  // 384: the width of small sentence-embedding models (MiniLM); at 100k chunks the vectors take
  // 154 MB. Wider keeps fewer hash collisions (docs/benchmarks.md "Retrieval" compares).
  static constexpr size_t kDefaultDimension = 384;

  // Throws std::invalid_argument when dimension is 0.
  explicit HashEmbedder(size_t dimension = kDefaultDimension, Pricer pricer = {});

  // Throws ProviderError kClientError: this provider only embeds.
  ChatResponse Chat(const ChatRequest& request) override;
  // One vector per input; input_tokens = tokens in all inputs. Honours the request's stop token.
  EmbedResponse Embed(const EmbedRequest& request) override;
  [[nodiscard]] std::string_view name() const override { return "offline-hash-embedder"; }

  [[nodiscard]] size_t dimension() const { return dimension_; }
  // The vector of one text (what Embed returns for it).
  [[nodiscard]] std::vector<float> EmbedText(std::string_view text) const;
  // The tokens EmbedText sees, lower-cased (stop words included).
  [[nodiscard]] static std::vector<std::string> Tokens(std::string_view text);

 private:
  size_t dimension_;
  Pricer pricer_;
};

}  // namespace cogo::providers
