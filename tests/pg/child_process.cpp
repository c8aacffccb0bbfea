#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "pg_fixture.h"

namespace cogo::testing {
namespace {

std::vector<char*> Argv(const std::string& path, const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

// In the child: route output, export the database URL, exec. Never returns.
[[noreturn]] void Exec(const std::string& path, const std::vector<std::string>& args, int out_fd,
                       int in_fd) {
  if (in_fd >= 0) dup2(in_fd, STDIN_FILENO);
  dup2(out_fd, STDOUT_FILENO);
  dup2(out_fd, STDERR_FILENO);
  // The child must not inherit the test's blocked signals.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  setenv("COGO_DATABASE_URL", DatabaseUrl().c_str(), 1);
  auto argv = Argv(path, args);
  execv(path.c_str(), argv.data());
  _exit(127);
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::string BinaryPath(const std::string& name) {
  return name.starts_with('/') ? name : std::string(COGO_BIN_DIR) + "/" + name;
}

std::string ScratchFile(const std::string& name) {
  static int counter = 0;
  const char* tmp = std::getenv("TMPDIR");
  const std::filesystem::path dir = tmp != nullptr ? tmp : "/tmp";
  const auto path = dir / ("cogo-test-" + std::to_string(getpid()) + "-" +
                           std::to_string(++counter) + "-" + name);
  std::filesystem::remove(path);
  return path.string();
}

ChildProcess::ChildProcess(const std::string& binary, const std::vector<std::string>& args,
                           const std::string& log_path) {
  const std::string path = BinaryPath(binary);
  const int out = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) throw std::runtime_error("cannot open " + log_path);
  pid_ = fork();
  if (pid_ == 0) Exec(path, args, out, -1);
  close(out);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

ChildProcess::~ChildProcess() {
  if (!exit_status_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

void ChildProcess::Signal(int signal) {
  if (!exit_status_) kill(pid_, signal);
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // A reaped child's pid answers ECHILD (or another child's status, once reused): never ask again.
  while (!exit_status_) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_status_ = DecodeStatus(status);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return exit_status_;
}

RunResult RunCommand(const std::string& binary, const std::vector<std::string>& args,
                     const std::string& stdin_text) {
  const std::string out_path = ScratchFile("out.txt");
  const std::string in_path = ScratchFile("in.txt");
  std::ofstream(in_path) << stdin_text;
  const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int in = open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
  const pid_t pid = fork();
  if (pid == 0) Exec(BinaryPath(binary), args, out, in);
  close(out);
  close(in);
  int status = 0;
  waitpid(pid, &status, 0);
  std::stringstream text;
  text << std::ifstream(out_path).rdbuf();
  std::filesystem::remove(out_path);
  std::filesystem::remove(in_path);
  return {DecodeStatus(status), text.str()};
}

}  // namespace cogo::testing
