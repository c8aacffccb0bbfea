#include "cogo/log/logging.h"

#include <mutex>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <spdlog/details/fmt_helper.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace cogo::log {
namespace {

// One JSON object per line; the message is escaped properly, which a pattern cannot do.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto seconds = std::chrono::duration_cast<std::chrono::milliseconds>(
                             msg.time.time_since_epoch())
                             .count();
    nlohmann::json line = {
        {"ts", static_cast<double>(seconds) / 1000.0},
        {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                              spdlog::level::to_string_view(msg.level).size())},
        {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
        {"msg", std::string(msg.payload.data(), msg.payload.size())},
        {"thread", msg.thread_id}};
    const std::string text =
        line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

std::mutex g_mu;
spdlog::sink_ptr g_sink;
spdlog::level::level_enum g_level = spdlog::level::info;

spdlog::sink_ptr Sink() {
  std::lock_guard lock(g_mu);
  if (!g_sink) {
    g_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    g_sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  }
  return g_sink;
}

}  // namespace

Format ParseFormat(const std::string& name) {
  if (name == "text") return Format::text;
  if (name == "json") return Format::json;
  throw std::invalid_argument("unknown log format '" + name + "' (expected text or json)");
}

void Setup(Format format, const std::string& level) {
  auto sink = Sink();
  if (format == Format::json) sink->set_formatter(std::make_unique<JsonFormatter>());
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + level + "'");
  }
  std::lock_guard lock(g_mu);
  g_level = parsed;
}

std::shared_ptr<spdlog::logger> Get(const std::string& name) {
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = std::make_shared<spdlog::logger>(name, Sink());
  {
    std::lock_guard lock(g_mu);
    logger->set_level(g_level);
  }
  logger->flush_on(spdlog::level::warn);
  try {
    spdlog::register_logger(logger);
  } catch (const spdlog::spdlog_ex&) {
    return spdlog::get(name);  // another thread registered it first
  }
  return logger;
}

}  // namespace cogo::log
