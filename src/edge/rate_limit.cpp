#include "cogo/edge/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace cogo::edge {

TakeResult TakeToken(const std::optional<BucketState>& bucket, const TokenBucketParams& params,
                     double now_s) {
  if (params.rate_per_s <= 0) return {true, BucketState{params.burst, now_s}, 0};
  BucketState state = bucket.value_or(BucketState{params.burst, now_s});
  const double elapsed = std::max(0.0, now_s - state.at_s);
  state.tokens = std::min(params.burst, state.tokens + elapsed * params.rate_per_s);
  state.at_s = std::max(now_s, state.at_s);
  if (state.tokens >= 1.0) {
    state.tokens -= 1.0;
    return {true, state, 0};
  }
  return {false, state, (1.0 - state.tokens) / params.rate_per_s};
}

int RetryAfterSeconds(double retry_after_s) {
  return std::max(1, static_cast<int>(std::ceil(retry_after_s)));
}

RateLimiter::RateLimiter(TokenBucketParams params, size_t max_tenants)
    : params_(params), max_tenants_(std::max<size_t>(1, max_tenants)) {}

TakeResult RateLimiter::Admit(std::string_view tenant, double now_s) {
  std::lock_guard lock(mu_);
  auto it = buckets_.find(tenant);
  std::optional<BucketState> current;
  if (it != buckets_.end()) current = it->second;
  TakeResult result = TakeToken(current, params_, now_s);
  if (it != buckets_.end()) {
    it->second = result.next;
  } else {
    if (buckets_.size() >= max_tenants_) Prune(now_s);
    // Still full of strangers: admit without tracking rather than evict a limited tenant.
    if (buckets_.size() < max_tenants_) buckets_.emplace(std::string(tenant), result.next);
  }
  return result;
}

void RateLimiter::Prune(double now_s) {
  // A bucket that would have refilled by now is indistinguishable from a missing one.
  const double refill_s = params_.rate_per_s > 0 ? params_.burst / params_.rate_per_s : 0;
  std::erase_if(buckets_, [&](const auto& entry) {
    return now_s - entry.second.at_s >= refill_s;
  });
}

size_t RateLimiter::tracked() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace cogo::edge
