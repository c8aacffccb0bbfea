// Entity and relation extraction from one chunk of text, as pure functions: an offline
// rule-based extractor for development, and the prompt and strict reply parser of the
// chat-model extractor. Thread-safe: no state.
//
// Offline rules (deterministic, English-leaning, honest about being rules):
//   entities   code identifiers (snake_case, CamelCase, name()) -> "identifier";
//              runs of capitalised words (a lone capitalised word only when it does not open the
//              sentence), acronyms (2+ capitals) and "quoted terms" -> "term"
//   relations  X is a|an Y -> is_a; X uses|calls|returns|contains|includes|supports Y -> that
//              verb (Y may be the next 1-3 plain words, a "concept"); every other pair of
//              entities in one sentence -> co_occurs (ordered by normalised name: symmetric)
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cogo::kg {

// The model name of the offline extractor (the indexing workflow's assignment model).
inline constexpr std::string_view kOfflineModel = "offline-extract";

struct Entity {
  std::string name;  // as written
  std::string type;  // identifier, term, concept, or what a model said
};

struct Relation {
  size_t source = 0;  // index into Extraction::entities
  size_t target = 0;
  std::string type;   // is_a, uses, co_occurs, ...
};

struct Extraction {
  std::vector<Entity> entities;    // unique by (NormalizeName(name), type)
  std::vector<Relation> relations;  // unique by (source, target, type); never source == target
};

// The key entities merge on: ASCII lower case, inner whitespace collapsed to one space,
// surrounding punctuation and quotes and a trailing "()" removed. "" when nothing is left.
[[nodiscard]] std::string NormalizeName(std::string_view name);

[[nodiscard]] Extraction ExtractOffline(std::string_view text);

// The chat extractor's instructions (system) and request (user) for one chunk.
[[nodiscard]] std::string ExtractionSystemPrompt();
[[nodiscard]] std::string ExtractionUserPrompt(std::string_view text);

// A model's reply, read strictly: one JSON object (optionally inside one ``` fence)
// {"entities": [{"name", "type"}], "relations": [{"source", "target", "type"}]}, no other keys,
// names 1..200 bytes, types 1..64 bytes of [a-z0-9_], relations naming listed entities. The
// error says what was wrong without repeating the reply.
[[nodiscard]] std::variant<Extraction, std::string> ParseExtraction(std::string_view reply);

}  // namespace cogo::kg
