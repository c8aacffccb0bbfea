#include "cogo/config/names.h"

#include <algorithm>

namespace cogo::config {

bool IsValidName(std::string_view name, const NameRule& rule) {
  if (name.empty() || name.size() > rule.max_bytes) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           (rule.upper_case && c >= 'A' && c <= 'Z');
  });
}

std::string DescribeNameRule(const NameRule& rule) {
  return std::string(rule.what) + " must be 1.." + std::to_string(rule.max_bytes) +
         " characters of " + (rule.upper_case ? "A-Z " : "") + "a-z 0-9 . _ -";
}

}  // namespace cogo::config
