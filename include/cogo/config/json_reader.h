// The one strict JSON reader for config files and request bodies. It parses with a depth limit
// and rejects duplicate keys, then hands out views whose typed getters check type and range and
// throw one error type, JsonError, carrying the key path ("routes[2].budget.maxCostUsd"), a
// machine-readable reason and a human message. Objects remember which keys were read, so a
// reader finishes each object with Finish() and any key it did not expect is an error.
// Thread-safety: a JsonDocument and its views are read-only; the document must outlive them.
//
// Usage — read an object, take the keys you know, then Finish():
//
//   Rule ReadRule(const config::JsonObject& o) {
//     Rule r;
//     r.model = o.String("model");                          // required, non-empty
//     r.tokens = o.Int("max_tokens", 1, 100000);            // required integer in [1, 100000]
//     r.cost = o.Double("max_cost_usd", config::DoubleRange::Positive());
//     r.note = o.StringOr("description", "", {.allow_empty = true});  // optional
//     if (auto b = o.OptionalObject("backoff")) r.backoff = ReadBackoff(*b);
//     o.Finish();                          // unknown_key for any key not read (`_comment` is fine)
//     return r;
//   }
//   std::variant<Rule, config::JsonError> Parse(std::string_view text) {
//     try {
//       const auto doc = config::JsonDocument::Parse(text);
//       return ReadRule(doc.root().AsObject());
//     } catch (const config::JsonError& e) {
//       return e;                          // e.reason(), e.path(), e.message()
//     }
//   }
//
// Finish() judges one object: call it on each nested object you read. A key you asked for counts
// as known even when absent. Maps keyed by names (intents, agents):
// `for (const auto& [key, value] : o.Entries())`. Checks of your own: value.Fail(reason, message)
// or o.FailAt(key, reason, message). A request body's error becomes the API's 400 through
// ToRequestError(e); a config file's is e.what() in the refusal to start.
// Rules: null is a value of type null — a required getter rejects it (wrong_type), an optional
// getter treats it as absent. Integers reject fractions (even 1.0). Strings are non-empty unless
// allowed. `_comment` keys are allowed in every object (a string) and skipped by Entries().
// Messages never repeat a string value from the document unless ParseOptions::show_values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cogo/config/names.h"

namespace cogo::config {

enum class JsonReason {
  malformed_json,  // not JSON text at all
  too_deep,        // objects/arrays nested deeper than ParseOptions::max_depth
  duplicate_key,   // an object repeats a key (plain JSON parsers silently keep the last)
  unknown_key,     // a key the reader did not take (Finish)
  missing_key,     // a required key is absent
  wrong_type,      // e.g. a string where a number belongs, 1.5 for an integer, null if required
  empty,           // "" or [] where a value is required
  out_of_range,    // a number outside its range, a string longer than allowed
  invalid_name,    // a name breaking its NameRule
  invalid_value,   // a reader's own check (cross-field rules, shapes): JsonValue::Fail
};

// Stable snake_case name ("unknown_key", ...) for logs, metrics and API error codes.
[[nodiscard]] std::string_view ReasonName(JsonReason reason);

class JsonError : public std::runtime_error {
 public:
  JsonError(JsonReason reason, std::string path, std::string message);
  [[nodiscard]] JsonReason reason() const { return reason_; }
  // Dotted key path with [i] for array items; "" is the document itself.
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const std::string& message() const { return message_; }
  // what(): "<path>: <reason>: <message>", "(document)" for the empty path.

 private:
  JsonReason reason_;
  std::string path_;
  std::string message_;
};

struct ParseOptions {
  int max_depth = 64;       // nesting levels of objects/arrays; the document's top value is 1
  bool show_values = false;  // quote offending string values in messages (config files only:
                             // a request body's strings must not be echoed or logged)
};

struct StringRule {
  bool allow_empty = false;
  std::size_t max_bytes = std::numeric_limits<std::size_t>::max();
};

struct DoubleRange {
  double min = std::numeric_limits<double>::lowest();
  double max = std::numeric_limits<double>::max();
  bool min_exclusive = false;  // min < value instead of min <= value

  static DoubleRange Positive() { return {0.0, std::numeric_limits<double>::max(), true}; }
  static DoubleRange AtLeast(double min) { return {min}; }
  static DoubleRange Between(double min, double max) { return {min, max}; }
};

class JsonObject;
class JsonDocument;

// A value inside a document, with its path. Cheap to copy. Getters throw JsonError.
class JsonValue {
 public:
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] bool is_null() const;

  [[nodiscard]] std::string AsString(const StringRule& rule = {}) const;
  [[nodiscard]] std::string AsName(const NameRule& rule) const;
  // Any integer in [min, max]; narrow it with a range that fits the target type.
  [[nodiscard]] int64_t AsInt(int64_t min = std::numeric_limits<int64_t>::min(),
                              int64_t max = std::numeric_limits<int64_t>::max()) const;
  [[nodiscard]] double AsDouble(const DoubleRange& range = {}) const;  // finite, integers too
  [[nodiscard]] bool AsBool() const;
  [[nodiscard]] JsonObject AsObject() const;
  [[nodiscard]] std::vector<JsonValue> AsArray(bool allow_empty = true) const;

  // Compact JSON text of this value, to pass a subtree on unchanged (a request's payload).
  [[nodiscard]] std::string Dump() const;
  // The same value reported under another path: reads an embedded document with its own paths.
  [[nodiscard]] JsonValue WithPath(std::string path) const;
  // Throws JsonError(reason, path(), message): a reader's own checks use it.
  [[noreturn]] void Fail(JsonReason reason, std::string message) const;

 private:
  friend class JsonObject;
  friend class JsonDocument;
  JsonValue(const nlohmann::json* node, std::string path, const ParseOptions* options)
      : node_(node), path_(std::move(path)), options_(options) {}
  [[noreturn]] void WrongType(const char* expected) const;

  const nlohmann::json* node_;
  std::string path_;
  const ParseOptions* options_;
};

// An object being read. Every getter marks its key as taken; Finish() rejects the rest. Copies
// share nothing: read each object through one JsonObject.
class JsonObject {
 public:
  [[nodiscard]] const std::string& path() const { return self_.path(); }
  [[nodiscard]] JsonValue value() const { return self_; }  // the object itself
  // Present and not null. Does not take the key.
  [[nodiscard]] bool Has(std::string_view key) const;

  [[nodiscard]] JsonValue Required(std::string_view key) const;                // missing_key
  [[nodiscard]] std::optional<JsonValue> Optional(std::string_view key) const;  // absent or null

  // Required keys.
  [[nodiscard]] std::string String(std::string_view key, const StringRule& rule = {}) const;
  [[nodiscard]] std::string Name(std::string_view key, const NameRule& rule) const;
  [[nodiscard]] int64_t Int(std::string_view key, int64_t min = std::numeric_limits<int64_t>::min(),
                            int64_t max = std::numeric_limits<int64_t>::max()) const;
  [[nodiscard]] double Double(std::string_view key, const DoubleRange& range = {}) const;
  [[nodiscard]] bool Bool(std::string_view key) const;
  [[nodiscard]] JsonObject Object(std::string_view key) const;
  [[nodiscard]] std::vector<JsonValue> Array(std::string_view key, bool allow_empty = true) const;

  // Optional keys: absent or null gives the fallback; a present value is checked like above.
  [[nodiscard]] std::string StringOr(std::string_view key, std::string fallback,
                                     const StringRule& rule = {}) const;
  [[nodiscard]] int64_t IntOr(std::string_view key, int64_t fallback,
                              int64_t min = std::numeric_limits<int64_t>::min(),
                              int64_t max = std::numeric_limits<int64_t>::max()) const;
  [[nodiscard]] double DoubleOr(std::string_view key, double fallback,
                                const DoubleRange& range = {}) const;
  [[nodiscard]] bool BoolOr(std::string_view key, bool fallback) const;
  [[nodiscard]] std::optional<JsonObject> OptionalObject(std::string_view key) const;

  // Every member but `_comment`, in key order, all taken: for maps keyed by names.
  [[nodiscard]] std::vector<std::pair<std::string, JsonValue>> Entries() const;

  // unknown_key for the first key (in key order) no getter took; wrong_type for a `_comment`
  // that is not a string.
  void Finish() const;

  // Fails at `<path>.<key>`, whether or not the key is present (cross-field checks).
  [[noreturn]] void FailAt(std::string_view key, JsonReason reason, std::string message) const;

 private:
  friend class JsonValue;
  explicit JsonObject(JsonValue self) : self_(std::move(self)) {}
  void Know(std::string_view key) const;
  [[nodiscard]] JsonValue Member(std::string_view key) const;  // precondition: present

  JsonValue self_;
  // Keys asked for, present or not, in the order asked: Finish() names them as the allowed ones.
  mutable std::vector<std::string> known_;
  mutable bool all_taken_ = false;  // Entries() took every key
};

// For request bodies: the API error code a refusal answers with (HTTP 400) — malformed_json,
// too_deep, not_an_object, duplicate_field, unknown_field, missing_field, wrong_type,
// invalid_field — and a message naming only keys the reader asked for, never the client's own
// keys or values.
struct RequestError {
  std::string code;
  std::string message;
};
[[nodiscard]] RequestError ToRequestError(const JsonError& error);

// A parsed document. Move-only; views into it must not outlive it.
class JsonDocument {
 public:
  // Throws JsonError: malformed_json, too_deep or duplicate_key (with the repeated key's path).
  [[nodiscard]] static JsonDocument Parse(std::string_view text, const ParseOptions& options = {});

  JsonDocument(JsonDocument&&) noexcept;
  JsonDocument& operator=(JsonDocument&&) noexcept;
  ~JsonDocument();

  [[nodiscard]] JsonValue root() const;

 private:
  JsonDocument();
  std::unique_ptr<nlohmann::json> tree_;
  std::unique_ptr<ParseOptions> options_;  // stable address for the views
};

}  // namespace cogo::config
