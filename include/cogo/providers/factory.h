// Choosing a model provider from configuration, shared by the daemons that call models:
// --provider-base-url / COGO_PROVIDER_BASE_URL set -> OpenAICompatibleProvider (API key from
// the environment variable COGO_PROVIDER_API_KEY, never a flag, never logged); unset -> the
// DeterministicOfflineProvider. Thread-safe: the returned providers are.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "cogo/policy/metering.h"
#include "cogo/providers/provider.h"

namespace CLI {
class App;
}

namespace cogo::providers {

struct ProviderFlags {
  std::string base_url;        // empty: the offline deterministic provider
  int timeout_ms = 120000;     // per HTTP attempt
  int max_retries = 2;
};

void AddProviderOptions(CLI::App& app, ProviderFlags& flags);

// A pricer over `prices` (unpriced models cost 0 here; callers check pricing up front).
[[nodiscard]] Pricer MakePricer(policy::PriceTable prices);

// Retries are logged as warnings on `logger`.
[[nodiscard]] std::shared_ptr<ModelProvider> MakeProvider(const ProviderFlags& flags, Pricer pricer,
                                                          std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::providers
