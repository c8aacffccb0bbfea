#include "cogo/orchestrator/routing_eval.h"

#include <nlohmann/json.hpp>

#include <stdexcept>

#include "cogo/config/json_reader.h"

namespace cogo::orchestrator {

std::vector<EvalItem> ParseEvalSet(std::string_view text) {
  const auto doc = config::JsonDocument::Parse(text, {.show_values = true});
  const auto root = doc.root().AsObject();
  std::vector<EvalItem> items;
  for (const auto& value : root.Array("items", false)) {
    const auto o = value.AsObject();
    EvalItem item;
    item.intent = o.Name("intent", config::kIntentName);
    if (const auto payload = o.Optional("payload")) item.payload_json = payload->Dump();
    const auto expected = o.Object("expected");
    item.expected_intent = expected.Name("intent", config::kIntentName);
    item.expected_agent = expected.StringOr("agent_id", "");
    item.expected_answer = expected.StringOr("answer_contains", "", {false, 1024});
    expected.Finish();
    o.Finish();
    items.push_back(std::move(item));
  }
  root.Finish();
  return items;
}

EvalScore ScoreRouting(const std::vector<EvalItem>& items, const std::vector<EvalOutcome>& outcomes) {
  if (items.size() != outcomes.size()) throw std::invalid_argument("one outcome per evaluation item");
  EvalScore score;
  score.items = static_cast<int>(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    const auto& out = outcomes[i];
    const bool right = out.refused.empty() && out.intent == item.expected_intent &&
                       (item.expected_agent.empty() || out.agent_id == item.expected_agent);
    score.confusion[item.expected_intent][out.refused.empty() ? out.intent : kNoPlan]++;
    if (right) {
      ++score.correct;
    } else {
      score.wrong.push_back(i);
    }
  }
  score.accuracy = score.items == 0 ? 0.0 : static_cast<double>(score.correct) / score.items;
  return score;
}

std::string EvalScoreJson(const EvalScore& score, const std::vector<EvalItem>& items,
                          const std::vector<EvalOutcome>& outcomes) {
  nlohmann::json wrong = nlohmann::json::array();
  for (const size_t i : score.wrong) {
    nlohmann::json w = {{"intent", items[i].intent},
                        {"expected", items[i].expected_intent},
                        {"chosen", outcomes[i].refused.empty() ? outcomes[i].intent : kNoPlan}};
    if (!items[i].expected_agent.empty()) w["expected_agent"] = items[i].expected_agent;
    if (!outcomes[i].agent_id.empty()) w["agent_id"] = outcomes[i].agent_id;
    if (!outcomes[i].refused.empty()) w["refused"] = outcomes[i].refused;
    wrong.push_back(std::move(w));
  }
  return nlohmann::json{{"items", score.items},
                        {"correct", score.correct},
                        {"accuracy", score.accuracy},
                        {"confusion", score.confusion},
                        {"wrong", wrong}}
      .dump();
}

}  // namespace cogo::orchestrator
