#include "cogo/ops/duration.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <utility>

namespace cogo::ops {
namespace {

// Longest suffix first so "ms" is not read as "m" + garbage.
constexpr std::array<std::pair<std::string_view, int64_t>, 5> kUnits{{
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}}};

}  // namespace

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  int64_t multiplier = 1;
  std::string_view digits = text;
  for (const auto& [suffix, ms] : kUnits) {
    if (text.size() > suffix.size() && text.substr(text.size() - suffix.size()) == suffix) {
      digits = text.substr(0, text.size() - suffix.size());
      multiplier = ms;
      break;
    }
  }
  if (digits.empty() || digits.front() < '0' || digits.front() > '9') return std::nullopt;
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  if (value > std::numeric_limits<int64_t>::max() / multiplier) return std::nullopt;
  return std::chrono::milliseconds(value * multiplier);
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  const int64_t ms = duration.count();
  if (ms != 0) {
    for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
      if (it->second > 1 && ms % it->second == 0) return std::to_string(ms / it->second) + std::string(it->first);
    }
  }
  return std::to_string(ms) + "ms";
}

}  // namespace cogo::ops
