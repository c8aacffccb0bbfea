#include "cli/eval.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <iostream>

#include "cogo/auth/jwt.h"
#include "cogo/auth/secret.h"
#include "cogo/config/files.h"
#include "cogo/config/json_reader.h"
#include "cogo/orchestrator/routing_eval.h"

namespace cogo::cli {
namespace {

using nlohmann::json;

// COGO_TOKEN when set, else a short service_role token signed with COGO_JWT_SECRET.
std::string ServiceToken() {
  if (const char* token = std::getenv("COGO_TOKEN"); token != nullptr && *token != '\0') return token;
  try {
    return auth::MintDevToken(auth::RequiredSecret("COGO_JWT_SECRET"), "service_role", "", "cogo-eval",
                              std::chrono::minutes(10));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("set COGO_TOKEN or COGO_JWT_SECRET: ") + e.what());
  }
}

}  // namespace

EvalCommands::EvalCommands(CLI::App& app) {
  root_ = app.add_subcommand("eval", "offline evaluations against a running brain");
  root_->require_subcommand(1);
  routing_ = root_->add_subcommand("routing", "run a labelled routing set through the brain's decide path");
  routing_->add_option("--set", set_, "the labelled set (format: config/eval/routing.json)")->required();
  routing_->add_option("--brain-url", brain_url_, "the brain's REST API")->envname("COGO_BRAIN_URL")->capture_default_str();
  routing_->add_option("--min-accuracy", min_accuracy_, "exit 1 below this accuracy (0..1), for CI")
      ->check(CLI::Range(0.0, 1.0));
}

bool EvalCommands::chosen() const { return root_->parsed(); }

int EvalCommands::Run() {
  std::vector<orchestrator::EvalItem> items;
  try {
    items = orchestrator::ParseEvalSet(config::ReadFile(set_));
  } catch (const config::JsonError& e) {
    throw std::invalid_argument(set_ + ": " + e.what());
  }
  httplib::Client brain(brain_url_);
  brain.set_connection_timeout(5);
  brain.set_read_timeout(60);
  const httplib::Headers headers = {{"Authorization", "Bearer " + ServiceToken()}};
  std::vector<orchestrator::EvalOutcome> outcomes;
  for (const auto& item : items) {
    const json body = {{"intent", item.intent}, {"payload", json::parse(item.payload_json)}};
    const auto answer = brain.Post("/api/orchestrator/plan", headers, body.dump(), "application/json");
    if (!answer) {
      std::cerr << "cogo: " << brain_url_ << ": " << httplib::to_string(answer.error()) << "\n";
      return 1;
    }
    const json reply = json::parse(answer->body, nullptr, false);
    orchestrator::EvalOutcome outcome;
    if (answer->status == 200 && reply.contains("plan")) {
      outcome.intent = reply["plan"].value("rule_intent", "");
      outcome.agent_id = reply["plan"].value("agent_id", "");
    } else if (answer->status == 422 && reply.is_object()) {
      outcome.refused = reply.value("error", "refused");
    } else {
      std::cerr << "cogo: the brain answered " << answer->status << ": " << answer->body << "\n";
      return 1;
    }
    outcomes.push_back(std::move(outcome));
  }
  const auto score = orchestrator::ScoreRouting(items, outcomes);
  std::cout << json::parse(orchestrator::EvalScoreJson(score, items, outcomes)).dump(2) << "\n";
  return score.accuracy + 1e-12 < min_accuracy_ ? 1 : 0;
}

}  // namespace cogo::cli
