// The sandbox a build or test command runs in: bubblewrap (`bwrap`) with every namespace
// unshared (no network, own PID namespace), a read-only view of the host's /usr and a few /etc
// files, a private /tmp, only the workspace writable (mounted at /ws), --die-with-parent and
// --new-session; plus rlimits (CPU seconds, address space, file size, processes, open files)
// and a wall-clock timeout that SIGKILLs the whole process group. Run by root, the command runs
// as an unprivileged uid (65534 by default) so RLIMIT_NPROC binds: the kernel never applies it
// to uid 0. There is no fallback: when bwrap cannot start, ProbeSandbox throws and nothing runs.
// Thread-safety: RunSandboxed may be called from many threads (each call forks its own child).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stop_token>
#include <string>
#include <vector>

namespace cogo::buildtest {

struct SandboxLimits {
  int64_t cpu_seconds = 600;                  // RLIMIT_CPU
  int64_t memory_bytes = 4LL << 30;           // RLIMIT_AS
  int64_t file_bytes = 1LL << 30;             // RLIMIT_FSIZE
  int64_t processes = 256;                    // RLIMIT_NPROC, for the sandbox uid
  int64_t open_files = 1024;                  // RLIMIT_NOFILE
  std::chrono::milliseconds timeout{600000};  // wall clock, then SIGKILL to the process group
  std::size_t max_output_bytes = 1 << 20;     // captured stdout+stderr: head and tail kept
};

struct SandboxOptions {
  std::string bwrap = "bwrap";
  // Host paths mounted read-only at the same place when they exist; /bin, /lib, /lib64 and /sbin
  // become links into /usr (Debian's merged /usr).
  std::vector<std::string> read_only = {"/usr", "/etc/alternatives", "/etc/ld.so.cache",
                                        "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/passwd",
                                        "/etc/group"};
  // The uid/gid the command runs as when the worker is root (ignored otherwise).
  uint32_t uid = 65534;
  uint32_t gid = 65534;
};

struct SandboxRun {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that ended it, if any
  bool timed_out = false;
  bool cancelled = false;  // the stop token asked
  int64_t duration_ms = 0;
  std::string output;           // stdout and stderr interleaved, at most max_output_bytes
  bool output_truncated = false;  // the middle was cut (the head and the tail are kept)
  int64_t output_bytes = 0;       // everything the command wrote
};

// Checks that bwrap runs here with these options (a trivial command in the full sandbox) and
// returns its description for report.json, e.g. "bubblewrap 0.8.0: user,pid,net,ipc,uts,cgroup
// namespaces, read-only /usr, uid 65534". Throws std::runtime_error naming what failed.
[[nodiscard]] std::string ProbeSandbox(const SandboxOptions& options);

// Runs `sh -c command` in `workspace` (a host directory the sandbox uid may write) and waits
// for it, the timeout, or `stop`. Throws std::runtime_error when it cannot fork or exec.
[[nodiscard]] SandboxRun RunSandboxed(const std::string& command, const std::string& workspace,
                                      const SandboxOptions& options, const SandboxLimits& limits,
                                      std::stop_token stop = {});

}  // namespace cogo::buildtest
