// A child process for end-to-end tests: spawned with arguments and extra environment, its
// output appended to a log file, signalled and reaped. Not thread-safe; one owner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace cogo::testing {

class ChildProcess {
 public:
  // Runs `binary` (BinaryPath) with `args`; stdout and stderr go
  // to `log_path`. COGO_DATABASE_URL is set to the test database.
  ChildProcess(const std::string& binary, const std::vector<std::string>& args,
               const std::string& log_path);
  ~ChildProcess();  // SIGKILLs and reaps a child still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void Signal(int signal);
  // The exit status (WEXITSTATUS, or 128 + signal) once the child ended within `timeout`; at
  // once, the same status, when an earlier call saw it end.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_status_;  // set once reaped
};

// Runs a command to completion and returns {exit status, stdout+stderr}.
struct RunResult {
  int status;
  std::string output;
};
RunResult RunCommand(const std::string& binary, const std::vector<std::string>& args,
                     const std::string& stdin_text = {});

// A name in the build's binary directory, or an absolute path as it is (a system tool).
[[nodiscard]] std::string BinaryPath(const std::string& name);
[[nodiscard]] std::string ScratchFile(const std::string& name);  // unique path under TMPDIR

}  // namespace cogo::testing
