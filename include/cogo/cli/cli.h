// The `cogo` operator command line: migrate, publish, status, inspect, wait, retry, token,
// requeue-dead, cancel, reclaim (leases and TTL expiry), prune [--dry-run], workers,
// workflows ..., agents list|propose|canary|promote|rollback, eval routing --set FILE. Output is
// JSON on stdout; errors go to stderr with a non-zero exit (2 for bad input, 1 otherwise).
#pragma once

namespace cogo::cli {

int Run(int argc, char** argv);

}  // namespace cogo::cli
