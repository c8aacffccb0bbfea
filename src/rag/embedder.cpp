#include "cogo/rag/embedder.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>

#include "cogo/providers/hash_embedder.h"

namespace cogo::rag {

void AddEmbedderOptions(CLI::App& app, EmbedderFlags& flags) {
  providers::AddProviderOptions(app, flags.provider);
  app.add_option("--embed-dimension", flags.dimension, "width of the offline embedder's vectors")
      ->envname("COGO_EMBED_DIMENSION")
      ->check(CLI::Range(8, 8192))
      ->capture_default_str();
  app.add_option("--embed-batch-size", flags.batch_size, "texts per embeddings request")
      ->envname("COGO_EMBED_BATCH_SIZE")
      ->check(CLI::Range(1, 2048))
      ->capture_default_str();
}

std::shared_ptr<providers::ModelProvider> MakeEmbeddingProvider(const EmbedderFlags& flags,
                                                                providers::Pricer pricer,
                                                                std::shared_ptr<spdlog::logger> logger) {
  if (flags.provider.base_url.empty()) {
    logger->info("embeddings: offline hash embedder, {} dimensions (not a learned model)", flags.dimension);
    return std::make_shared<providers::HashEmbedder>(flags.dimension, std::move(pricer));
  }
  return providers::MakeProvider(flags.provider, std::move(pricer), std::move(logger));
}

void Normalize(std::vector<float>& vector) {
  double norm = 0;
  for (const float v : vector) norm += static_cast<double>(v) * v;
  if (norm <= 0) return;
  const double scale = 1.0 / std::sqrt(norm);
  for (float& v : vector) v = static_cast<float>(v * scale);
}

Embedded EmbedInBatches(providers::ModelProvider& provider, const std::vector<std::string>& texts,
                        const std::string& model, size_t batch_size, const providers::CallControl& control) {
  using providers::ProviderError;
  using providers::ProviderErrorKind;
  Embedded out;
  out.vectors.reserve(texts.size());
  batch_size = std::max<size_t>(batch_size, 1);
  for (size_t begin = 0; begin < texts.size(); begin += batch_size) {
    if (control.stop.stop_requested()) throw ProviderError(ProviderErrorKind::kCancelled, "embedding cancelled", 0, 0);
    providers::EmbedRequest request;
    request.inputs.assign(texts.begin() + static_cast<std::ptrdiff_t>(begin),
                          texts.begin() + static_cast<std::ptrdiff_t>(std::min(texts.size(), begin + batch_size)));
    request.model = model;
    request.control = control;
    auto response = provider.Embed(request);
    if (response.vectors.size() != request.inputs.size()) {
      throw ProviderError(ProviderErrorKind::kBadResponse,
                          std::to_string(response.vectors.size()) + " vectors for " +
                              std::to_string(request.inputs.size()) + " inputs", 0, 1);
    }
    for (auto& vector : response.vectors) {
      if (out.dimension == 0) out.dimension = vector.size();
      if (vector.empty() || vector.size() != out.dimension) {
        throw ProviderError(ProviderErrorKind::kBadResponse, "vectors of different dimensions", 0, 1);
      }
      if (std::any_of(vector.begin(), vector.end(), [](float v) { return !std::isfinite(v); })) {
        throw ProviderError(ProviderErrorKind::kBadResponse, "a vector holds a non-finite number", 0, 1);
      }
      Normalize(vector);
      out.vectors.push_back(std::move(vector));
    }
    out.usage.input_tokens += response.usage.input_tokens;
    out.usage.cost_usd += response.usage.cost_usd;
  }
  return out;
}

}  // namespace cogo::rag
