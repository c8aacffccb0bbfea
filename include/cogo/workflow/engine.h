// The workflow engine's I/O: the definition catalog (files registered as immutable versions),
// the handler of the bus route (orchestrator, workflow) that advances runs, and the handler of
// (orchestrator, notify) that delivers webhooks. Each advance is one transaction: lock the
// engine message's lease and the run row, load the run, call Transition (transition.h), write
// its actions (step rows, step messages, timers, run state, bus_events) and complete the engine
// message. Thread-safe: handlers run on many worker threads; the catalog locks its cache.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>
#include <spdlog/logger.h>

#include "cogo/db/pool.h"
#include "cogo/runtime/daemon.h"
#include "cogo/runtime/handler.h"
#include "cogo/workflow/definition.h"

namespace cogo::runtime {
struct WorkerOptions;
}

namespace cogo::workflow {

inline constexpr const char* kEngineService = "orchestrator";
inline constexpr const char* kEngineRole = "workflow";
inline constexpr const char* kNotifyRole = "notify";  // service kEngineService

// Definitions by workflow id, each with the version the database gave its content.
class DefinitionCatalog {
 public:
  explicit DefinitionCatalog(std::map<std::string, Definition> current);

  // Records every current definition in workflow_definitions (an unchanged file keeps its
  // version, a changed one gets the next). Call once before serving.
  void Register(pqxx::connection& conn);

  struct Entry {
    std::shared_ptr<const Definition> definition;
    int version = 0;
  };
  // The definition new runs of `id` start with; null definition when unknown.
  [[nodiscard]] Entry Current(const std::string& id) const;
  [[nodiscard]] std::vector<Entry> All() const;
  // The version a run is pinned to: the current one, or the stored text of an older version
  // (cached). Throws std::runtime_error when the database has no such version.
  [[nodiscard]] std::shared_ptr<const Definition> Pinned(pqxx::transaction_base& txn,
                                                         const std::string& id, int version);

 private:
  mutable std::mutex mu_;
  std::map<std::string, Entry> current_;
  std::map<std::pair<std::string, int>, std::shared_ptr<const Definition>> pinned_;
};

struct EngineOptions {
  std::string definitions_dir;  // --workflows / COGO_WORKFLOWS; empty: DefaultDefinitionsDir()
  int concurrency = 4;  // handler threads (and pooled connections) of each engine worker
};

// Where definitions are when no directory is named: ./config/workflows when it exists (a
// checkout or an install root), else this build's source tree's, else the installed
// <sysconfdir>/cogo/workflows (like the migrations' DefaultSqlDir).
[[nodiscard]] std::string DefaultDefinitionsDir();

// Loads every definition of `dir` (empty: DefaultDefinitionsDir()) and registers it in the database (LoadDefinitions, then
// DefinitionCatalog::Register). Throws on an invalid file or an unreachable database.
[[nodiscard]] std::shared_ptr<DefinitionCatalog> LoadCatalog(const std::string& dir,
                                                             const std::string& database_url);

// Appends the engine's worker on (orchestrator, workflow) and the notifier's on (orchestrator,
// notify), their options copied from `base` (lease, poll, ...), shard 0. The notifier signs
// with COGO_NOTIFY_SECRET from the environment.
void AddEngineWorkers(std::shared_ptr<DefinitionCatalog> catalog, const runtime::WorkerOptions& base,
                      const EngineOptions& options, runtime::DaemonContext& ctx,
                      std::vector<std::unique_ptr<runtime::Component>>& components);

// The (orchestrator, workflow) handler. Messages: {kind: start|step_finished|timer|signal,
// run_id, ...}; a stale or duplicate one completes without changing the run.
[[nodiscard]] runtime::Handler MakeWorkflowHandler(std::shared_ptr<DefinitionCatalog> catalog,
                                                   std::shared_ptr<db::ConnectionPool> pool,
                                                   std::shared_ptr<spdlog::logger> logger);

struct NotifyOptions {
  std::string secret;  // HMAC-SHA256 key of X-Cogo-Signature; empty: the header is not sent
  int timeout_ms = 5000;
};

// The (orchestrator, notify) handler: POSTs `body` to `url` with `X-Cogo-Signature:
// sha256=<hex HMAC of the body>`. 2xx completes; 408, 429, 5xx and transport errors retry (the
// message's attempts, then a dead letter); other answers fail permanently.
[[nodiscard]] runtime::Handler MakeNotifyHandler(NotifyOptions options,
                                                 std::shared_ptr<spdlog::logger> logger);

// HMAC-SHA256 of `body` under `secret`, lower-case hex (what X-Cogo-Signature carries after
// "sha256=").
[[nodiscard]] std::string SignBody(const std::string& secret, const std::string& body);

}  // namespace cogo::workflow
