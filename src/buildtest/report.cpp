#include "cogo/buildtest/report.h"

#include <nlohmann/json.hpp>

#include <csignal>

namespace cogo::buildtest {
namespace {

using nlohmann::json;

std::string Tail(const std::string& text, std::size_t bytes) {
  if (text.size() <= bytes) return text;
  size_t cut = text.size() - bytes;
  while (cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) ++cut;  // UTF-8
  return "[...]" + text.substr(cut);
}

json Command(const std::optional<SandboxRun>& run, std::size_t log_bytes) {
  if (!run) return {{"ran", false}, {"ok", false}, {"exit_code", -1}, {"signal", 0}, {"timed_out", false},
                    {"duration_ms", 0}, {"log", ""}};
  return {{"ran", true},
          {"ok", run->exit_code == 0 && !run->timed_out && !run->cancelled},
          {"exit_code", run->exit_code},
          {"signal", run->signal},
          {"timed_out", run->timed_out},
          {"duration_ms", run->duration_ms},
          {"log", Tail(run->output, log_bytes)}};
}

}  // namespace

std::string BuildReport(const ReportInput& in) {
  json apply = {{"ok", in.apply.ok}, {"edits", in.apply.edits}, {"files", in.apply.files}};
  if (in.apply.error) {
    apply["error"] = {{"index", in.apply.error->index}, {"reason", in.apply.error->reason},
                      {"message", in.apply.error->message}};
  }
  json build = Command(in.build, in.log_bytes);
  json tests = Command(in.tests, in.log_bytes);
  const TestCounts counts = in.counts.value_or(TestCounts{});
  json failures = json::array();
  for (const auto& f : counts.failures) failures.push_back({{"name", f.name}, {"message", f.message}});
  tests["runner"] = in.counts ? counts.runner : "";
  tests["passed"] = counts.passed;
  tests["failed"] = counts.failed;
  tests["skipped"] = counts.skipped;
  tests["failures"] = failures;
  tests["ok"] = tests["ok"].get<bool>() && counts.failed == 0 && counts.passed >= 1;
  const bool timed_out = (in.build && in.build->timed_out) || (in.tests && in.tests->timed_out);
  const bool truncated = (in.build && in.build->output_truncated) || (in.tests && in.tests->output_truncated);
  // Which limits ended a command: the wall clock, RLIMIT_CPU (SIGXCPU), RLIMIT_FSIZE (SIGXFSZ),
  // and the output cap (the log was cut, the command went on).
  json hit = json::array();
  for (const auto* run : {in.build ? &*in.build : nullptr, in.tests ? &*in.tests : nullptr}) {
    if (run == nullptr) continue;
    if (run->timed_out) hit.push_back("wall_clock");
    if (run->signal == SIGXCPU) hit.push_back("cpu");
    if (run->signal == SIGXFSZ) hit.push_back("file_size");
    if (run->output_truncated) hit.push_back("output");
  }
  json report = {{"taskId", in.task_id},
                 {"attempt", {{"message_id", in.message_id}, {"fence", in.fence}}},
                 {"sandbox", in.sandbox},
                 {"apply", apply},
                 {"build", build},
                 {"tests", tests},
                 {"limits", {{"timed_out", timed_out},
                             {"hit", hit},
                             {"output_truncated", truncated},
                             {"timeout_ms", in.limits.timeout.count()},
                             {"cpu_seconds", in.limits.cpu_seconds},
                             {"memory_bytes", in.limits.memory_bytes},
                             {"file_bytes", in.limits.file_bytes},
                             {"processes", in.limits.processes}}}};
  return report.dump(2, ' ', false, json::error_handler_t::replace);
}

}  // namespace cogo::buildtest
