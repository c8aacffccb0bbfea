#include "cogo/cli/cli.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <thread>

#include "cogo/bus/bus.h"
#include "cogo/bus/inspect.h"
#include "cogo/db/connection.h"
#include "cogo/db/migrator.h"
#include "cogo/auth/jwt.h"
#include "cogo/auth/secret.h"
#include "cogo/ops/reclaimer.h"
#include "cogo/ops/retention.h"
#include "cogo/runtime/daemon.h"
#include "cli/agents.h"
#include "cli/eval.h"
#include "cli/workflows.h"

namespace cogo::cli {
namespace {

using nlohmann::json;

constexpr int kExitBadInput = 2;

struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void Print(const std::string& json_text) { std::cout << json::parse(json_text).dump(2) << "\n"; }

std::unique_ptr<pqxx::connection> Open(const runtime::CommonOptions& common) {
  return db::Connect(common.database_url, "cogo-cli");
}

int Migrate(const runtime::CommonOptions& common, const std::string& sql_dir, const std::string& role_prefix) {
  const auto migrations = db::LoadMigrations(sql_dir.empty() ? db::DefaultSqlDir() : std::filesystem::path(sql_dir));
  auto conn = Open(common);
  if (!role_prefix.empty()) db::UseRolePrefix(*conn, role_prefix);
  const auto report = db::Migrate(*conn, migrations);
  json out;
  out["applied"] = report.applied;
  out["version"] = report.current_version;
  std::cout << out.dump(2) << "\n";
  return 0;
}

int Publish(const runtime::CommonOptions& common, bus::PublishRequest request) {
  if (request.payload_json == "-") {
    request.payload_json.assign(std::istreambuf_iterator<char>(std::cin), {});
  }
  if (auto rejection = bus::Validate(request, {})) {
    throw BadInput(rejection->reason + ": " + rejection->detail);
  }
  auto conn = Open(common);
  bus::Bus bus(*conn);
  const auto published = bus.Publish(request);
  std::cout << json{{"id", published.id}, {"created", published.created}}.dump() << "\n";
  return 0;
}

int Inspect(const runtime::CommonOptions& common, int64_t id) {
  auto conn = Open(common);
  pqxx::read_transaction txn(*conn);
  auto message = bus::MessageJson(txn, id);
  if (!message) throw BadInput("no message " + std::to_string(id));
  json out = json::parse(*message);
  out["events"] = json::parse(bus::EventsJson(txn, id));
  std::cout << out.dump(2) << "\n";
  return 0;
}

// Waits until the message is final; exit 0 when done, 1 otherwise (failed, dead, timeout).
int Wait(const runtime::CommonOptions& common, int64_t id, int timeout_s) {
  auto conn = Open(common);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (true) {
    std::string status;
    {
      pqxx::read_transaction txn(*conn);
      const auto rows = txn.exec_params("SELECT status FROM agent_messages WHERE id = $1", id);
      if (rows.empty()) throw BadInput("no message " + std::to_string(id));
      status = rows[0][0].as<std::string>();
    }
    if (status != "queued" && status != "running") {
      Inspect(common, id);
      return status == "done" ? 0 : 1;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "cogo: message " << id << " still " << status << " after " << timeout_s
                << " s\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int Report(bool changed, const std::string& what, int64_t id) {
  if (!changed) {
    std::cerr << "cogo: message " << id << " could not be " << what
              << " (absent, or not in a state that allows it)\n";
    return 1;
  }
  std::cout << json{{"id", id}, {what, true}}.dump() << "\n";
  return 0;
}

}  // namespace

int Run(int argc, char** argv) {
  runtime::CommonOptions common;
  CLI::App app("cogo: operate the cogo bus", "cogo");
  app.set_config("--config", "", "TOML config file (unknown keys are an error)");
  app.allow_config_extras(false);
  runtime::AddCommonOptions(app, common);
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand (inherited by each)

  std::string sql_dir;
  auto* migrate = app.add_subcommand("migrate", "apply the schema migrations in sql/");
  migrate->add_option("--sql-dir", sql_dir, "migration directory (default: COGO_SQL_DIR or built-in)");
  std::string role_prefix;
  migrate->add_option("--role-prefix", role_prefix, "database roles are named <prefix>_edge, ... (default cogo; sql/023)")
      ->envname("COGO_DB_ROLE_PREFIX");

  bus::PublishRequest request;
  auto* publish = app.add_subcommand("publish", "publish one message");
  publish->add_option("--service", request.service, "route service")->required();
  publish->add_option("--role", request.role, "route role")->required();
  publish->add_option("--shard", request.shard, "route shard")->capture_default_str();
  publish->add_option("--tenant", request.tenant, "tenant")->required();
  publish->add_option("--priority", request.priority, "higher first")->capture_default_str();
  publish->add_option("--max-attempts", request.max_attempts)->capture_default_str();
  publish->add_option("--idempotency-key", request.idempotency_key);
  publish->add_option("--correlation-id", request.correlation_id);
  publish->add_option("--delay-ms", request.delay_ms)->capture_default_str();
  publish->add_option("payload", request.payload_json, "JSON object, or - for stdin")->required();

  int64_t id = 0;
  int timeout_s = 30;
  std::string reason = "cancelled by operator";
  int reclaim_limit = 1000;
  std::string service;
  std::string role;
  auto* status = app.add_subcommand("status", "queue depth per route and status");
  auto* workers = app.add_subcommand("workers", "workers seen in the last two minutes");
  auto* inspect = app.add_subcommand("inspect", "a message and its event trail");
  inspect->add_option("id", id)->required();
  auto* wait = app.add_subcommand("wait", "wait for a message to finish, then inspect it");
  wait->add_option("id", id)->required();
  wait->add_option("--timeout", timeout_s, "seconds")->capture_default_str();
  auto* retry = app.add_subcommand("retry", "queue a dead, failed or cancelled message again");
  retry->add_option("id", id)->required();
  auto* requeue = app.add_subcommand("requeue-dead", "queue every dead letter again");
  requeue->add_option("--service", service, "only this service");
  requeue->add_option("--role", role, "only this role");
  auto* cancel = app.add_subcommand("cancel", "cancel a queued or running message");
  cancel->add_option("id", id)->required();
  cancel->add_option("--reason", reason)->capture_default_str();
  bool expire_ttl = true;
  auto* reclaim = app.add_subcommand(
      "reclaim", "requeue running messages whose lease expired, end queued ones past their TTL");
  reclaim->add_option("--limit", reclaim_limit, "rows per batch (batches repeat until done)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  reclaim->add_option("--expire-ttl", expire_ttl, "end queued messages past their assignment TTL")
      ->capture_default_str();
  ops::RetentionOptions retention;
  bool dry_run = false;
  auto* prune = app.add_subcommand("prune", "delete final messages, events and usage past their ages");
  ops::AddRetentionOptions(*prune, retention, false);
  prune->add_flag("--dry-run", dry_run, "count what would be deleted, delete nothing");

  std::string token_role = "authenticated";
  std::string token_tenant;
  std::string token_sub = "dev";
  int token_ttl_s = 3600;
  auto* token = app.add_subcommand(
      "token", "mint an HS256 JWT for cogo-edge and the brain API (secret from COGO_JWT_SECRET)");
  token->alias("mint-jwt");
  token->add_option("--role", token_role, "anon, authenticated or service_role")->capture_default_str();
  token->add_option("--tenant", token_tenant, "tenant claim (optional for service_role)");
  token->add_option("--sub", token_sub)->capture_default_str();
  token->add_option("--ttl", token_ttl_s, "seconds")->check(CLI::Range(1, 31 * 24 * 3600))->capture_default_str();

  WorkflowCommands workflows(app);
  AgentCommands agents(app);
  EvalCommands eval(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*token) {
      std::string secret;
      try {
        secret = auth::RequiredSecret("COGO_JWT_SECRET");
      } catch (const std::invalid_argument& e) {
        throw BadInput(e.what());
      }
      if (token_tenant.empty() && token_role != "service_role") throw BadInput("--tenant is required");
      try {
        std::cout << auth::MintDevToken(secret, token_role, token_tenant, token_sub,
                                        std::chrono::seconds(token_ttl_s))
                  << "\n";
      } catch (const std::invalid_argument& e) {
        throw BadInput(e.what());
      }
      return 0;
    }
    if (*migrate) return Migrate(common, sql_dir, role_prefix);
    if (workflows.chosen()) return workflows.Run(common);
    if (agents.chosen()) return agents.Run(common);
    if (eval.chosen()) return eval.Run();
    if (*publish) return Publish(common, request);
    if (*inspect) return Inspect(common, id);
    if (*wait) return Wait(common, id, timeout_s);
    if (*status || *workers) {
      auto conn = Open(common);
      pqxx::read_transaction txn(*conn);
      Print(*status ? bus::StatusJson(txn) : bus::WorkersJson(txn));
      return 0;
    }
    auto conn = Open(common);
    bus::Bus bus(*conn);
    if (*retry) return Report(bus.Retry(id), "retried", id);
    if (*cancel) return Report(bus.Cancel(id, reason), "cancelled", id);
    if (*requeue) {
      std::cout << json{{"requeued", bus.RequeueDead(service, role)}}.dump() << "\n";
      return 0;
    }
    if (*reclaim) {
      const auto r = ops::ReclaimPass(*conn, {reclaim_limit, {}, expire_ttl});
      std::cout << json{{"requeued", r.requeued},
                        {"dead_lettered", r.dead_lettered},
                        {"ttl_expired", r.ttl_expired}}
                       .dump()
                << "\n";
      return 0;
    }
    if (*prune) {
      const auto c = dry_run ? ops::CountPrunable(*conn, retention) : ops::Prune(*conn, retention);
      std::cout << json{{dry_run ? "would_delete" : "deleted",
                         {{"finished", c.finished}, {"dead", c.dead}, {"events", c.events},
                          {"usage", c.usage}}}}
                       .dump()
                << "\n";
      return 0;
    }
  } catch (const BadInput& e) {
    std::cerr << "cogo: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::invalid_argument& e) {
    std::cerr << "cogo: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "cogo: " << e.what() << "\n";
    return 1;
  }
  return 1;
}

}  // namespace cogo::cli
