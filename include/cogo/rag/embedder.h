// Embedding texts for retrieval through a ModelProvider: the provider chosen from flags (the
// offline HashEmbedder unless an OpenAI-compatible base URL is set), and batching with the
// checks a vector store needs (one vector per input, one dimension, unit length). Thread-safe:
// the providers are.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/providers/factory.h"
#include "cogo/providers/provider.h"

namespace cogo::rag {

struct EmbedderFlags {
  providers::ProviderFlags provider;  // --provider-base-url etc. (shared with chat)
  size_t dimension = 384;             // the offline embedder's width (HashEmbedder::kDefaultDimension)
  size_t batch_size = 64;             // inputs per /v1/embeddings request
};

// The provider flags plus --embed-dimension and --embed-batch-size.
void AddEmbedderOptions(CLI::App& app, EmbedderFlags& flags);

// Retries are logged on `logger`; the API key comes from COGO_PROVIDER_API_KEY.
[[nodiscard]] std::shared_ptr<providers::ModelProvider> MakeEmbeddingProvider(
    const EmbedderFlags& flags, providers::Pricer pricer, std::shared_ptr<spdlog::logger> logger);

struct Embedded {
  std::vector<std::vector<float>> vectors;  // one per input, in order, L2-normalised
  size_t dimension = 0;
  policy::Usage usage;                       // summed over the batches
};

// Embeds `texts` in batches of `batch_size` (each one provider call, which retries on its own).
// Throws ProviderError: the provider's, kBadResponse when a batch answers with a wrong count or
// mixed dimensions, kCancelled when `control` stops between batches.
[[nodiscard]] Embedded EmbedInBatches(providers::ModelProvider& provider, const std::vector<std::string>& texts,
                                      const std::string& model, size_t batch_size,
                                      const providers::CallControl& control);

// `vector` scaled to unit length (the zero vector stays zero).
void Normalize(std::vector<float>& vector);

}  // namespace cogo::rag
