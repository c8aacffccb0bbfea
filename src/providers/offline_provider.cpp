#include "cogo/providers/offline_provider.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace cogo::providers {
namespace {

// FNV-1a 64: stable across platforms and releases (std::hash is not).
uint64_t Fnv1a(std::string_view text, uint64_t hash = 14695981039346656037ull) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t at = 0;
  while (at < text.size()) {
    while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at]))) ++at;
    size_t end = at;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    if (end > at) words.push_back(text.substr(at, end - at));
    at = end;
  }
  return words;
}

// Adds a pseudo-random vector in [-1, 1)^n seeded by `seed` to `sum`.
void AddSeededVector(uint64_t seed, std::vector<double>& sum) {
  uint64_t state = seed;
  for (double& value : sum) {
    value += static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-52 - 1.0;
  }
}

void CheckControl(const CallControl& control) {
  if (control.stop.stop_requested()) {
    throw ProviderError(ProviderErrorKind::kCancelled, "offline call cancelled", 0, 0);
  }
  if (control.deadline && std::chrono::steady_clock::now() >= *control.deadline) {
    throw ProviderError(ProviderErrorKind::kTimeout, "offline call deadline passed", 0, 0);
  }
}

}  // namespace

DeterministicOfflineProvider::DeterministicOfflineProvider(OfflineProviderOptions options)
    : options_(std::move(options)) {
  if (options_.embedding_dimension == 0) {
    throw std::invalid_argument("embedding_dimension must be > 0");
  }
}

int64_t DeterministicOfflineProvider::CountWords(std::string_view text) {
  return static_cast<int64_t>(Words(text).size());
}

ChatResponse DeterministicOfflineProvider::Chat(const ChatRequest& request) {
  CheckControl(request.control);
  const std::string model = request.model.empty() ? std::string(kDefaultModel) : request.model;

  uint64_t digest = Fnv1a(model);
  int64_t input_words = 0;
  std::string_view last_user;
  for (const auto& message : request.messages) {
    // Role and content are separated by a byte that cannot occur in either, so
    // ("ab","c") and ("a","bc") hash differently.
    digest = Fnv1a(std::string_view("\x1f", 1), Fnv1a(message.role, digest));
    digest = Fnv1a(std::string_view("\x1e", 1), Fnv1a(message.content, digest));
    input_words += CountWords(message.content);
    if (message.role == "user") last_user = message.content;
  }

  std::string echo;
  const auto echoed = Words(last_user);
  for (size_t i = 0; i < echoed.size() && i < 12; ++i) {
    if (i) echo += ' ';
    echo += echoed[i];
  }
  if (echoed.size() > 12) echo += " ...";
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(digest));
  std::string reply = std::string(kReplyPrefix) + " reply to: " + (echo.empty() ? "(nothing)" : echo) +
                      " (digest " + hex + ")";

  ChatResponse response;
  response.model = model;
  response.finish_reason = "stop";
  auto reply_words = Words(reply);
  if (request.max_tokens && *request.max_tokens >= 0 &&
      reply_words.size() > static_cast<size_t>(*request.max_tokens)) {
    reply_words.resize(static_cast<size_t>(*request.max_tokens));
    std::string truncated;
    for (size_t i = 0; i < reply_words.size(); ++i) {
      if (i) truncated += ' ';
      truncated += reply_words[i];
    }
    reply = std::move(truncated);
    response.finish_reason = "length";
  }
  response.content = std::move(reply);
  response.usage.input_tokens = input_words;
  response.usage.output_tokens = static_cast<int64_t>(reply_words.size());
  if (options_.pricer) {
    response.usage.cost_usd =
        options_.pricer(model, response.usage.input_tokens, response.usage.output_tokens);
  }
  return response;
}

std::vector<float> DeterministicOfflineProvider::EmbedText(std::string_view text) const {
  std::vector<double> sum(options_.embedding_dimension, 0.0);
  const auto words = Words(text);
  for (std::string_view word : words) AddSeededVector(Fnv1a(word), sum);
  double norm = 0;
  for (double value : sum) norm += value * value;
  if (norm == 0) {
    // No words (or a perfect cancellation): a vector seeded by the whole text.
    std::fill(sum.begin(), sum.end(), 0.0);
    AddSeededVector(Fnv1a(text, Fnv1a("\x1d")), sum);
    norm = 0;
    for (double value : sum) norm += value * value;
  }
  const double scale = 1.0 / std::sqrt(norm);
  std::vector<float> vector(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) vector[i] = static_cast<float>(sum[i] * scale);
  return vector;
}

EmbedResponse DeterministicOfflineProvider::Embed(const EmbedRequest& request) {
  CheckControl(request.control);
  EmbedResponse response;
  response.model = request.model.empty() ? std::string(kDefaultModel) : request.model;
  response.vectors.reserve(request.inputs.size());
  for (const auto& input : request.inputs) {
    response.vectors.push_back(EmbedText(input));
    response.usage.input_tokens += CountWords(input);
  }
  if (options_.pricer) {
    response.usage.cost_usd = options_.pricer(response.model, response.usage.input_tokens, 0);
  }
  return response;
}

}  // namespace cogo::providers
