// Usage of one model call or one message: tokens and what they cost. Plain value type shared
// by model providers (which read tokens from responses), the price table (which prices them)
// and the worker guards (which meter them against the assignment's budget).
#pragma once

#include <cstdint>
#include <string>

namespace cogo::policy {

struct Usage {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  double cost_usd = 0.0;

  [[nodiscard]] int64_t total_tokens() const { return input_tokens + output_tokens; }
  Usage& operator+=(const Usage& other) {
    input_tokens += other.input_tokens;
    output_tokens += other.output_tokens;
    cost_usd += other.cost_usd;
    return *this;
  }
};

}  // namespace cogo::policy
