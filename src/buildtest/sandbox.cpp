#include "cogo/buildtest/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <thread>

namespace cogo::buildtest {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> BwrapArgs(const std::string& command, const std::string& workspace,
                                   const SandboxOptions& options) {
  std::vector<std::string> args = {options.bwrap, "--unshare-all", "--die-with-parent", "--new-session",
                                   "--cap-drop", "ALL"};
  for (const auto& path : options.read_only) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) args.insert(args.end(), {"--ro-bind", path, path});
  }
  for (const char* dir : {"bin", "lib", "lib64", "sbin"}) {
    const std::string target = std::string("/usr/") + dir;
    struct stat st {};
    if (stat(target.c_str(), &st) == 0) args.insert(args.end(), {"--symlink", "usr/" + std::string(dir), "/" + std::string(dir)});
  }
  args.insert(args.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", workspace, "/ws",
                           "--chdir", "/ws", "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
                           "--setenv", "HOME", "/ws", "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8",
                           "--", "/bin/sh", "-c", command});
  return args;
}

// stdout+stderr within a byte cap: the first half and the latest half are kept.
class CappedOutput {
 public:
  explicit CappedOutput(size_t cap) : half_(std::max<size_t>(cap / 2, 1)) {}
  void Append(const char* data, size_t n) {
    total_ += n;
    const size_t to_head = std::min(n, half_ - std::min(half_, head_.size()));
    head_.append(data, to_head);
    tail_.append(data + to_head, n - to_head);
    if (tail_.size() > 2 * half_) tail_.erase(0, tail_.size() - half_);
  }
  void Finish(SandboxRun& run) {
    run.output_bytes = static_cast<int64_t>(total_);
    run.output_truncated = head_.size() + tail_.size() < total_ || tail_.size() > half_;
    if (tail_.size() > half_) tail_.erase(0, tail_.size() - half_);
    run.output = head_;
    if (run.output_truncated) {
      run.output += "\n[... " + std::to_string(total_ - head_.size() - tail_.size()) + " bytes omitted ...]\n";
    }
    run.output += tail_;
  }

 private:
  size_t half_;
  size_t total_ = 0;
  std::string head_, tail_;
};

// `hard_extra` above the soft limit: for RLIMIT_CPU the soft limit sends SIGXCPU, which names
// the cause, a second before the hard limit's SIGKILL.
void SetLimit(int resource, int64_t value, int64_t hard_extra = 0) {
  const rlimit limit{static_cast<rlim_t>(value), static_cast<rlim_t>(value + hard_extra)};
  (void)setrlimit(resource, &limit);
}

}  // namespace

SandboxRun RunSandboxed(const std::string& command, const std::string& workspace, const SandboxOptions& options,
                        const SandboxLimits& limits, std::stop_token stop) {
  const auto args = BwrapArgs(command, workspace, options);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const bool drop = geteuid() == 0;
  const auto started = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // The child: only async-signal-safe calls from here to exec.
    setpgid(0, 0);
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close_range(3, ~0U, 0);
    SetLimit(RLIMIT_CPU, limits.cpu_seconds, 1);
    SetLimit(RLIMIT_AS, limits.memory_bytes);
    SetLimit(RLIMIT_FSIZE, limits.file_bytes);
    SetLimit(RLIMIT_NPROC, limits.processes);
    SetLimit(RLIMIT_NOFILE, limits.open_files);
    SetLimit(RLIMIT_CORE, 0);
    if (drop && (setgroups(0, nullptr) != 0 || setgid(options.gid) != 0 || setuid(options.uid) != 0)) _exit(126);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also in the parent, so a kill right away finds the group
  close(fds[1]);
  CappedOutput output(limits.max_output_bytes);
  SandboxRun run;
  const auto deadline = started + limits.timeout;
  bool open = true;
  int status = 0;
  bool reaped = false;
  auto kill_group = [&] { (void)kill(-pid, SIGKILL); };
  std::optional<Clock::time_point> reaped_at;
  while (!reaped || open) {
    if (!run.timed_out && !run.cancelled) {
      if (Clock::now() >= deadline) {
        run.timed_out = true;
        kill_group();
      } else if (stop.stop_requested()) {
        run.cancelled = true;
        kill_group();
      }
    }
    if (open) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, 50) > 0) {
        char buffer[16384];
        const ssize_t n = read(fds[0], buffer, sizeof buffer);
        if (n > 0) {
          output.Append(buffer, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          open = false;
        }
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
      reaped = true;
      reaped_at = Clock::now();
    }
    // bwrap is gone but something still holds the pipe: the group goes, and we stop listening.
    if (reaped && open && Clock::now() - *reaped_at > std::chrono::seconds(1)) {
      kill_group();
      open = false;
    }
  }
  close(fds[0]);
  kill_group();  // stragglers outside the PID namespace (there should be none)
  run.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  if (WIFEXITED(status)) {
    run.exit_code = WEXITSTATUS(status);
    // bwrap reports a command killed by a signal as 128+n.
    if (run.exit_code > 128 && run.exit_code < 160) run.signal = run.exit_code - 128;
  } else if (WIFSIGNALED(status)) {
    run.signal = WTERMSIG(status);
  }
  output.Finish(run);
  return run;
}

std::string ProbeSandbox(const SandboxOptions& options) {
  std::string version = "bubblewrap";
  if (FILE* p = popen((options.bwrap + " --version 2>&1").c_str(), "r")) {
    char line[128] = {};
    if (fgets(line, sizeof line, p) != nullptr) {
      version = line;
      while (!version.empty() && (version.back() == '\n' || version.back() == '\r')) version.pop_back();
    }
    pclose(p);
  }
  std::string dir = (std::filesystem::temp_directory_path() / "cogo-sandbox-probe.XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) throw std::runtime_error("sandbox probe: mkdtemp failed");
  const bool root = geteuid() == 0;
  if (root && chown(dir.c_str(), options.uid, options.gid) != 0) {
    std::filesystem::remove_all(dir);
    throw std::runtime_error("sandbox probe: chown failed");
  }
  SandboxLimits limits;
  limits.timeout = std::chrono::seconds(20);
  const auto run = RunSandboxed("echo sandboxed > probe && cat probe", dir, options, limits);
  std::filesystem::remove_all(dir);
  if (run.exit_code != 0 || run.output.find("sandboxed") == std::string::npos) {
    throw std::runtime_error("the sandbox (" + options.bwrap + ") does not run here: exit " +
                             std::to_string(run.exit_code) + ": " + run.output.substr(0, 500));
  }
  std::string out = version + ": bwrap --unshare-all (user, pid, net, ipc, uts, cgroup namespaces), read-only /usr, "
                    "private /tmp, workspace at /ws, --die-with-parent, rlimits cpu/as/fsize/nproc/nofile";
  out += root ? ", uid " + std::to_string(options.uid) : ", the worker's uid";
  return out;
}

}  // namespace cogo::buildtest
