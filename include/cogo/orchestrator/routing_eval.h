// Offline routing evaluation: a labelled set of requests (intent or free text -> the intent,
// and optionally the agent, they should be routed to; config/eval/routing.json), and its score
// once each request has been decided: accuracy and the confusion between expected and chosen
// intents. Pure functions, thread-safe; `cogo eval routing` and the upgrade workflow's
// evaluate step feed them the brain's real decisions.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cogo::orchestrator {

struct EvalItem {
  std::string intent;               // as a caller sends it (one no rule names: the classifier's case)
  std::string payload_json = "{}";  // the request's payload
  std::string expected_intent;      // the rule it should be routed by
  std::string expected_agent;       // empty: any agent
  // Text the agent's result must contain (empty: any). Only a replay, which executes the
  // request, judges it (the upgrade's evaluate step, orchestrator/replay.h); a routing
  // evaluation does not.
  std::string expected_answer;
};

// Format: {"items": [{"intent", "payload"?, "expected": {"intent", "agent_id"?, "answer_contains"?}}]} (`_comment`
// allowed). Throws config::JsonError naming the key path.
[[nodiscard]] std::vector<EvalItem> ParseEvalSet(std::string_view text);

// What the decide path made of one item: the rule's intent and agent, or `refused` with the
// reason (unknown_intent, a policy refusal, ...).
struct EvalOutcome {
  std::string intent;
  std::string agent_id;
  std::string refused;
};

inline constexpr const char* kNoPlan = "(none)";  // the confusion's column for refusals

struct EvalScore {
  int items = 0;
  int correct = 0;
  double accuracy = 0;  // correct / items; 0 for an empty set
  // expected intent -> chosen intent (kNoPlan when refused) -> count
  std::map<std::string, std::map<std::string, int>> confusion;
  std::vector<size_t> wrong;  // indexes of the items judged wrong
};

// `outcomes[i]` belongs to `items[i]`. Right when the chosen intent is the expected one and,
// when an agent is expected, the agent too.
[[nodiscard]] EvalScore ScoreRouting(const std::vector<EvalItem>& items, const std::vector<EvalOutcome>& outcomes);

// {items, correct, accuracy, confusion, wrong: [{intent, expected, chosen, refused?}]}
[[nodiscard]] std::string EvalScoreJson(const EvalScore& score, const std::vector<EvalItem>& items,
                                        const std::vector<EvalOutcome>& outcomes);

}  // namespace cogo::orchestrator
