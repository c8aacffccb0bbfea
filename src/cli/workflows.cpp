#include "cli/workflows.h"

#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include <iostream>

#include "cogo/db/connection.h"
#include "cogo/workflow/runs.h"

namespace cogo::cli {
namespace {

using nlohmann::json;

std::optional<std::string> Given(const std::string& text) {
  return text.empty() ? std::nullopt : std::optional<std::string>(text);
}

void Print(const std::string& json_text) { std::cout << json::parse(json_text).dump(2) << "\n"; }

}  // namespace

WorkflowCommands::WorkflowCommands(CLI::App& app) {
  root_ = app.add_subcommand("workflows", "workflow definitions and runs");
  root_->require_subcommand(1);
  list_ = root_->add_subcommand("list", "the definitions the database knows, each version");
  show_ = root_->add_subcommand("show", "one definition as stored (the newest version unless --version)");
  show_->add_option("workflow_id", workflow_id_)->required();
  show_->add_option("--version", version_, "a version number");
  runs_ = root_->add_subcommand("runs", "runs, newest first");
  runs_->add_option("--workflow-id", workflow_id_);
  runs_->add_option("--tenant", tenant_);
  runs_->add_option("--status", status_)
      ->check(CLI::IsMember({"running", "waiting", "succeeded", "failed", "cancelled", "timed_out"}));
  runs_->add_option("--before", before_, "runs with a smaller id (the previous page's next)");
  runs_->add_option("--limit", limit_)->check(CLI::Range(1, 500))->capture_default_str();
  inspect_ = root_->add_subcommand("inspect", "a run: steps, gate verdicts, signals and its messages' trail");
  inspect_->add_option("run_id", run_id_)->required();
  cancel_ = root_->add_subcommand("cancel", "cancel a run and its queued and running messages");
  cancel_->add_option("run_id", run_id_)->required();
  cancel_->add_option("--reason", reason_)->capture_default_str();
  stuck_ = root_->add_subcommand("stuck", "live runs that nothing will advance (no message, wait or timer)");
}

bool WorkflowCommands::chosen() const { return root_->parsed(); }

int WorkflowCommands::Run(const runtime::CommonOptions& common) {
  auto conn = db::Connect(common.database_url, "cogo-cli");
  if (*cancel_) {
    try {
      workflow::CancelRun(*conn, run_id_, std::nullopt, reason_);
    } catch (const workflow::RunError& e) {
      if (e.kind() == workflow::RunError::Kind::not_found) throw std::invalid_argument("no run " + std::to_string(run_id_));
      std::cerr << "cogo: run " << run_id_ << ": " << e.reason() << ": " << e.what() << "\n";
      return 1;
    }
    std::cout << json{{"runId", run_id_}, {"cancelled", true}}.dump() << "\n";
    return 0;
  }
  pqxx::read_transaction txn(*conn);
  if (*list_) {
    Print(txn.exec(R"SQL(
SELECT coalesce(jsonb_agg(jsonb_build_object('workflowId', workflow_id, 'version', version,
         'digest', digest, 'createdAt', created_at) ORDER BY workflow_id, version), '[]')::text
FROM workflow_definitions)SQL")[0][0].as<std::string>());
    return 0;
  }
  if (*show_) {
    const auto rows = txn.exec_params(R"SQL(
SELECT jsonb_build_object('workflowId', workflow_id, 'version', version, 'digest', digest,
                          'definition', definition)::text
FROM workflow_definitions WHERE workflow_id = $1 AND ($2 = 0 OR version = $2)
ORDER BY version DESC LIMIT 1)SQL", workflow_id_, version_);
    if (rows.empty()) throw std::invalid_argument("no workflow " + workflow_id_ + (version_ > 0 ? " v" + std::to_string(version_) : ""));
    Print(rows[0][0].as<std::string>());
    return 0;
  }
  if (*runs_) {
    workflow::RunFilter filter{Given(tenant_), Given(workflow_id_), Given(status_),
                               before_ > 0 ? std::optional<int64_t>(before_) : std::nullopt, limit_};
    Print(workflow::ListRunsJson(txn, filter));
    return 0;
  }
  if (*inspect_) {
    const auto view = workflow::RunViewJson(txn, run_id_, std::nullopt);
    if (!view) throw std::invalid_argument("no run " + std::to_string(run_id_));
    Print(*view);
    return 0;
  }
  Print(workflow::StuckRunsJson(txn, std::nullopt, 0));
  return 0;
}

}  // namespace cogo::cli
