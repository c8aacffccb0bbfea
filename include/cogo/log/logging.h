// Logging setup shared by every executable: one stderr sink, text or JSON lines, and named
// loggers that share it. Thread-safe (spdlog loggers are).
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace cogo::log {

enum class Format { text, json };

// Parses "text" / "json"; throws std::invalid_argument naming the bad value.
[[nodiscard]] Format ParseFormat(const std::string& name);

// Configures the process-wide sink and level ("trace".."off"); call once, early in main.
void Setup(Format format, const std::string& level);

// A logger named `name` writing to the configured sink.
[[nodiscard]] std::shared_ptr<spdlog::logger> Get(const std::string& name);

}  // namespace cogo::log
