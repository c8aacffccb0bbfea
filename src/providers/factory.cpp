#include "cogo/providers/factory.h"

#include <CLI/CLI.hpp>

#include <cstdlib>

#include "cogo/providers/offline_provider.h"
#include "cogo/providers/openai_provider.h"

namespace cogo::providers {

void AddProviderOptions(CLI::App& app, ProviderFlags& flags) {
  app.add_option("--provider-base-url", flags.base_url,
                 "OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (empty: offline "
                 "deterministic provider); API key from COGO_PROVIDER_API_KEY")
      ->envname("COGO_PROVIDER_BASE_URL");
  app.add_option("--provider-timeout-ms", flags.timeout_ms, "read timeout per provider request")
      ->envname("COGO_PROVIDER_TIMEOUT_MS")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  app.add_option("--provider-max-retries", flags.max_retries, "retries on 429/5xx/timeouts")
      ->envname("COGO_PROVIDER_MAX_RETRIES")
      ->check(CLI::Range(0, 10))
      ->capture_default_str();
}

Pricer MakePricer(policy::PriceTable prices) {
  return [prices = std::move(prices)](const std::string& model, int64_t in, int64_t out) {
    return policy::CostUsd(prices, model, in, out).value_or(0.0);
  };
}

std::shared_ptr<ModelProvider> MakeProvider(const ProviderFlags& flags, Pricer pricer,
                                            std::shared_ptr<spdlog::logger> logger) {
  if (flags.base_url.empty()) {
    logger->info("model provider: {} (offline, deterministic; not a model)",
                 DeterministicOfflineProvider::kDefaultModel);
    return std::make_shared<DeterministicOfflineProvider>(OfflineProviderOptions{64, std::move(pricer)});
  }
  OpenAIProviderOptions o;
  o.base_url = flags.base_url;
  if (const char* key = std::getenv("COGO_PROVIDER_API_KEY")) o.api_key = key;
  o.read_timeout = std::chrono::milliseconds(flags.timeout_ms);
  o.max_retries = flags.max_retries;
  o.pricer = std::move(pricer);
  o.on_retry = [logger](const RetryNotice& n) {
    logger->warn("provider attempt {} failed ({}, http {}); retrying in {} ms", n.failed_attempt,
                 ToString(n.kind), n.http_status, n.delay.count());
  };
  logger->info("model provider: openai-compatible at {} (api key {})", o.base_url,
               o.api_key.empty() ? "not set" : "set");
  return std::make_shared<OpenAICompatibleProvider>(std::move(o));
}

}  // namespace cogo::providers
