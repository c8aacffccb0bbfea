#include "cli/agents.h"

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <cstdlib>
#include <iostream>

#include "cogo/db/connection.h"
#include "cogo/orchestrator/version_store.h"

namespace cogo::cli {
namespace {

using nlohmann::json;

std::string CliActor() {
  const char* user = std::getenv("USER");
  return std::string("cli:") + (user != nullptr && *user != '\0' ? user : "operator");
}

void AddVersionArguments(CLI::App& command, orchestrator::VersionOp& op, std::string& reason) {
  command.add_option("agent_id", op.agent_id)->required();
  command.add_option("version", op.version)->required();
  command.add_option("--reason", reason, "why (kept in agent_version_events)");
}

}  // namespace

AgentCommands::AgentCommands(CLI::App& app) {
  root_ = app.add_subcommand("agents", "agent versions: weights, canaries, promotions and rollbacks");
  root_->require_subcommand(1);
  list_ = root_->add_subcommand("list", "every agent's versions, weights, status and live figures of the last hour");
  list_->add_option("--agent", op_.agent_id, "only this agent");
  propose_ = root_->add_subcommand("propose", "propose a version (what it leaves out comes from the active version)");
  AddVersionArguments(*propose_, op_, reason_);
  propose_->add_option("--model", op_.proposal.model);
  propose_->add_option("--max-cost-usd", max_cost_usd_)->check(CLI::PositiveNumber);
  propose_->add_option("--max-tokens", max_tokens_)->check(CLI::PositiveNumber);
  propose_->add_option("--ttl-ms", ttl_ms_)->check(CLI::Range(int64_t{1}, int64_t{policy::kMaxTtl.count()}));
  propose_->add_option("--routing", routing_, "routing rules the agent must be named in")->envname("COGO_ROUTING")->capture_default_str();
  propose_->add_option("--policy", policy_, "policy table the version must pass")->envname("COGO_POLICY")->capture_default_str();
  canary_ = root_->add_subcommand("canary", "give a proposed or canary version a share of the traffic");
  AddVersionArguments(*canary_, op_, reason_);
  canary_->add_option("--weight", op_.weight, "percent of the agent's decisions")->required()->check(CLI::Range(0.0, 100.0));
  promote_ = root_->add_subcommand("promote", "make a version the active one; the old one retires");
  AddVersionArguments(*promote_, op_, reason_);
  rollback_ = root_->add_subcommand("rollback", "retire a version; an active one hands back to the previous");
  AddVersionArguments(*rollback_, op_, reason_);
}

bool AgentCommands::chosen() const { return root_->parsed(); }

int AgentCommands::Run(const runtime::CommonOptions& common) {
  auto conn = db::Connect(common.database_url, "cogo-cli");
  if (*list_) {
    pqxx::read_transaction txn(*conn);
    json agents = json::parse(orchestrator::AgentsStateJson(txn, 3600));
    if (!op_.agent_id.empty()) {
      if (!agents.contains(op_.agent_id)) throw std::invalid_argument("no agent " + op_.agent_id);
      agents = json{{op_.agent_id, agents[op_.agent_id]}};
    }
    std::cout << agents.dump(2) << "\n";
    return 0;
  }
  if (!config::IsValidName(op_.agent_id, orchestrator::kAgentIdName)) {
    throw std::invalid_argument(config::DescribeNameRule(orchestrator::kAgentIdName));
  }
  if (!config::IsValidName(op_.version, orchestrator::kVersionName)) {
    throw std::invalid_argument(config::DescribeNameRule(orchestrator::kVersionName));
  }
  op_.action = *propose_   ? orchestrator::VersionAction::propose
               : *canary_  ? orchestrator::VersionAction::canary
               : *promote_ ? orchestrator::VersionAction::promote
                           : orchestrator::VersionAction::rollback;
  op_.proposal.budget = {max_cost_usd_, max_tokens_};
  op_.proposal.ttl = std::chrono::milliseconds(ttl_ms_);
  // Only a proposal is checked against the brain's files: the others work from anywhere.
  std::shared_ptr<const orchestrator::RoutingTable> routing;
  std::shared_ptr<const policy::PolicyTable> policy;
  if (*propose_) {
    routing = orchestrator::LoadRoutingFile(routing_);
    policy = policy::LoadPolicyFile(policy_);
  }
  const auto result = orchestrator::RunVersionOp(*conn, op_, {CliActor(), reason_, 0}, routing.get(), policy.get());
  if (const auto* refusal = std::get_if<orchestrator::OpRefusal>(&result)) {
    std::cerr << "cogo: " << refusal->reason << ": " << refusal->message << "\n";
    return 1;
  }
  std::cout << json::parse(orchestrator::ChangesJson(std::get<std::vector<orchestrator::VersionChange>>(result))).dump(2)
            << "\n";
  return 0;
}

}  // namespace cogo::cli
