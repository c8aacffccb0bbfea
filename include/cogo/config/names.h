// The one rule for the names that route work and partition spending: tenants and intents (in
// request bodies, routing configs and plans). A name is 1..max_bytes characters of a-z 0-9 . _ -,
// plus A-Z where the rule allows upper case. Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cogo::config {

struct NameRule {
  const char* what;          // "tenant", "intent": names the rule in messages
  std::size_t max_bytes;     // at least 1 character, at most this many
  bool upper_case = false;   // A-Z allowed too
};

// Tenants come from callers' identity systems, which often use upper case.
inline constexpr NameRule kTenantName{"tenant", 128, true};
// Intents are routing-table keys, matched exactly: lower case only, so "Chat" is not a near miss.
inline constexpr NameRule kIntentName{"intent", 64, false};

[[nodiscard]] bool IsValidName(std::string_view name, const NameRule& rule);

// "intent must be 1..64 characters of a-z 0-9 . _ -": the message for a name that breaks it.
[[nodiscard]] std::string DescribeNameRule(const NameRule& rule);

}  // namespace cogo::config
