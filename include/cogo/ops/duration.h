// Durations as operators write them in flags and config ("90s", "15m", "36h", "7d", "250ms",
// a bare number is milliseconds). Pure functions: thread-safe; and a duration flag.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace cogo::ops {

// nullopt for anything else: empty, negative, a fraction, an unknown unit, overflow.
[[nodiscard]] std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The shortest exact form: 604800000 ms -> "7d", 90000 -> "90s", 1500 -> "1500ms".
[[nodiscard]] std::string FormatDuration(std::chrono::milliseconds duration);

// A duration flag: `value` holds the default (shown in the help) and receives what the flag says.
// Anything but a positive duration is refused, naming the flag; 0 too when `zero_allowed`
// (callers read 0 as "never").
void AddDurationOption(CLI::App& app, const std::string& name, std::chrono::milliseconds& value,
                       const std::string& help, bool zero_allowed = false);

}  // namespace cogo::ops
