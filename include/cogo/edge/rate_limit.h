// Per-tenant rate limiting with token buckets. TakeToken is the pure decision (time passed in,
// seconds on any monotonic scale); RateLimiter keeps one bucket per tenant behind a mutex and
// forgets buckets that have refilled, so memory stays bounded. RateLimiter is thread-safe.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace cogo::edge {

struct TokenBucketParams {
  double rate_per_s = 5.0;  // sustained requests per second; <= 0 disables limiting
  double burst = 20.0;      // bucket size: requests allowed at once
};

struct BucketState {
  double tokens = 0.0;
  double at_s = 0.0;  // when `tokens` was last computed
};

struct TakeResult {
  bool allowed = false;
  BucketState next;          // the bucket after this request
  double retry_after_s = 0;  // when refused: seconds until one token is available
};

// A missing bucket starts full. Refill is rate * elapsed, capped at burst; a request takes one
// token. Time going backwards counts as no time.
[[nodiscard]] TakeResult TakeToken(const std::optional<BucketState>& bucket,
                                   const TokenBucketParams& params, double now_s);

// Retry-After in whole seconds (at least 1) for a refusal.
[[nodiscard]] int RetryAfterSeconds(double retry_after_s);

class RateLimiter {
 public:
  explicit RateLimiter(TokenBucketParams params, size_t max_tenants = 100000);

  // Takes a token from the tenant's bucket.
  [[nodiscard]] TakeResult Admit(std::string_view tenant, double now_s);

  [[nodiscard]] size_t tracked() const;

 private:
  void Prune(double now_s);  // caller holds mu_

  TokenBucketParams params_;
  size_t max_tenants_;
  mutable std::mutex mu_;
  std::map<std::string, BucketState, std::less<>> buckets_;
};

}  // namespace cogo::edge
