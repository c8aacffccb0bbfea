#include "cogo/providers/provider.h"

namespace cogo::providers {

std::string_view ToString(ProviderErrorKind kind) {
  switch (kind) {
    case ProviderErrorKind::kRateLimited: return "rate_limited";
    case ProviderErrorKind::kServerError: return "server_error";
    case ProviderErrorKind::kBadResponse: return "bad_response";
    case ProviderErrorKind::kTimeout: return "timeout";
    case ProviderErrorKind::kUnreachable: return "unreachable";
    case ProviderErrorKind::kClientError: return "client_error";
    case ProviderErrorKind::kCancelled: return "cancelled";
  }
  return "unknown";
}

ProviderError::ProviderError(ProviderErrorKind kind, const std::string& message, int http_status,
                             int attempts)
    : std::runtime_error(std::string(ToString(kind)) + ": " + message),
      kind_(kind),
      http_status_(http_status),
      attempts_(attempts) {}

bool ProviderError::retryable() const {
  switch (kind_) {
    case ProviderErrorKind::kRateLimited:
    case ProviderErrorKind::kServerError:
    case ProviderErrorKind::kTimeout:
    case ProviderErrorKind::kUnreachable:
      return true;
    case ProviderErrorKind::kBadResponse:
    case ProviderErrorKind::kClientError:
    case ProviderErrorKind::kCancelled:
      return false;
  }
  return false;
}

}  // namespace cogo::providers
