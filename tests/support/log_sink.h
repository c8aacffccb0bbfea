// An in-memory spdlog sink for tests (spdlog's tests/test_sink.h pattern): give a component a
// logger from MakeTestLogger and assert on the lines it wrote ("info <message>"). Thread-safe:
// the sink locks around every write and every read.
#pragma once

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace cogo::testing {

class LogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  LogSink() { set_pattern("%l %v"); }

  [[nodiscard]] std::vector<std::string> Lines() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }
  // How many lines contain `needle`.
  [[nodiscard]] size_t Count(std::string_view needle) {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    for (const auto& line : lines_) n += line.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
  [[nodiscard]] std::string Text() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string text;
    for (const auto& line : lines_) text += line;
    return text;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    lines_.emplace_back(formatted.data(), formatted.size());
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

// A logger that writes every level to `sink` only.
inline std::shared_ptr<spdlog::logger> MakeTestLogger(const std::string& name, std::shared_ptr<LogSink> sink) {
  auto logger = std::make_shared<spdlog::logger>(name, std::move(sink));
  logger->set_level(spdlog::level::trace);
  return logger;
}

}  // namespace cogo::testing
