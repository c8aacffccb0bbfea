#include "cogo/providers/hash_embedder.h"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace cogo::providers {
namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;
constexpr double kCharWeight = 1.0;  // L2 weight of one word's character n-grams

uint64_t Fnv1a(std::string_view bytes, uint64_t hash = kFnvOffset) {
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

bool IsStopWord(const std::string& word) {
  static const std::unordered_set<std::string> kStop = {
      "a", "an", "and", "are", "as", "at", "be", "by", "can", "for", "from", "has", "have", "if",
      "in", "into", "is", "it", "its", "may", "not", "of", "on", "or", "so", "such", "that", "the",
      "their", "then", "there", "these", "this", "to", "was", "were", "which", "will", "with", "you"};
  return kStop.count(word) > 0;
}

}  // namespace

HashEmbedder::HashEmbedder(size_t dimension, Pricer pricer) : dimension_(dimension), pricer_(std::move(pricer)) {
  if (dimension_ == 0) throw std::invalid_argument("embedding dimension must be > 0");
}

std::vector<std::string> HashEmbedder::Tokens(std::string_view text) {
  std::vector<std::string> tokens;
  std::string current;
  for (const char raw : text) {
    const auto c = static_cast<unsigned char>(raw);
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c >= 0x80) {
      current.push_back(raw);
    } else if (c >= 'A' && c <= 'Z') {
      current.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if (!current.empty()) {
      tokens.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) tokens.push_back(std::move(current));
  return tokens;
}

std::vector<float> HashEmbedder::EmbedText(std::string_view text) const {
  // Feature -> summed raw weight; the kind prefix keeps a word and an n-gram of it apart.
  std::unordered_map<uint64_t, double> counts;
  const auto tokens = Tokens(text);
  const std::string* previous = nullptr;
  for (const auto& word : tokens) {
    const bool stop = IsStopWord(word);
    if (!stop) {
      counts[Fnv1a(word, Fnv1a("w:"))] += 1.0;
      if (previous != nullptr) counts[Fnv1a(word, Fnv1a(" ", Fnv1a(*previous, Fnv1a("b:"))))] += 0.5;
    }
    previous = stop ? nullptr : &word;
    if (stop) continue;
    const std::string bounded = "<" + word + ">";
    std::vector<uint64_t> grams;
    for (size_t n = 3; n <= 5; ++n) {
      for (size_t i = 0; i + n <= bounded.size(); ++i) {
        grams.push_back(Fnv1a(std::string_view(bounded).substr(i, n), Fnv1a("c:")));
      }
    }
    // Each gram 1/sqrt(n): a word's grams together weigh as much (L2) as the word itself, so
    // "index" and "indexes" are near through the grams they share.
    const double gram_weight = kCharWeight / std::sqrt(static_cast<double>(grams.size()));
    for (const uint64_t g : grams) counts[g] += gram_weight;
  }
  std::vector<double> vector(dimension_, 0.0);
  for (const auto& [hash, count] : counts) {
    // Sublinear in repeats, relative to one occurrence of the feature's weight.
    const double weight = count >= 1.0 ? 1.0 + std::log(count) : count;
    vector[hash % dimension_] += (hash >> 63) != 0 ? -weight : weight;
  }
  double norm = 0;
  for (const double v : vector) norm += v * v;
  norm = std::sqrt(norm);
  std::vector<float> out(dimension_, 0.0F);
  if (norm > 0) {
    for (size_t i = 0; i < dimension_; ++i) out[i] = static_cast<float>(vector[i] / norm);
  }
  return out;
}

ChatResponse HashEmbedder::Chat(const ChatRequest& /*request*/) {
  throw ProviderError(ProviderErrorKind::kClientError, "the offline hash embedder only embeds", 0, 0);
}

EmbedResponse HashEmbedder::Embed(const EmbedRequest& request) {
  EmbedResponse response;
  response.model = request.model.empty() ? std::string(kModel) : request.model;
  response.vectors.reserve(request.inputs.size());
  for (const auto& input : request.inputs) {
    if (request.control.stop.stop_requested()) {
      throw ProviderError(ProviderErrorKind::kCancelled, "embedding cancelled", 0, 0);
    }
    response.vectors.push_back(EmbedText(input));
    response.usage.input_tokens += static_cast<int64_t>(Tokens(input).size());
  }
  if (pricer_) response.usage.cost_usd = pricer_(response.model, response.usage.input_tokens, 0);
  return response;
}

}  // namespace cogo::providers
