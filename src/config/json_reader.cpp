#include "cogo/config/json_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

namespace cogo::config {
namespace {

using nlohmann::json;

constexpr std::string_view kComment = "_comment";

std::string Join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

// What a message may say about a value: numbers, booleans and null as they are; strings only
// when the document's author is the reader of the message (show_values), else their type.
std::string Shown(const json& value, const ParseOptions& options) {
  if (value.is_string() && !options.show_values) return "a string";
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

std::string Number(double d) { return fmt::format("{}", d); }

// Parser callback: rejects a repeated key and nesting beyond the limit as the text is read, so
// a hostile document is refused before it is built. Paths are tracked per open container.
class StrictnessCheck {
 public:
  explicit StrictnessCheck(int max_depth) : max_depth_(max_depth) {}

  bool operator()(int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // `depth` counts the containers around this one; the document's top value is level 1.
        if (depth + 1 > max_depth_) {
          throw JsonError(JsonReason::too_deep, PathOfNext(),
                          "nested deeper than " + std::to_string(max_depth_) + " levels");
        }
        frames_.push_back({event == json::parse_event_t::array_start, {}, {}, 0});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames_.pop_back();
        Advance();
        break;
      case json::parse_event_t::key: {
        Frame& frame = frames_.back();
        frame.key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.key).second) {
          throw JsonError(JsonReason::duplicate_key, PathOfNext(), "duplicate key");
        }
        break;
      }
      case json::parse_event_t::value: Advance(); break;
    }
    return true;
  }

 private:
  struct Frame {
    bool array;
    std::set<std::string> keys;
    std::string key;  // objects: the member being read
    size_t index;     // arrays: the item being read
  };

  void Advance() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }

  // The path of the value being read now (the key just seen, or the next array item).
  std::string PathOfNext() const {
    std::string path;
    for (const Frame& f : frames_) path = f.array ? Index(path, f.index) : Join(path, f.key);
    return path;
  }

  int max_depth_;
  std::vector<Frame> frames_;
};

}  // namespace

std::string_view ReasonName(JsonReason reason) {
  switch (reason) {
    case JsonReason::malformed_json: return "malformed_json";
    case JsonReason::too_deep: return "too_deep";
    case JsonReason::duplicate_key: return "duplicate_key";
    case JsonReason::unknown_key: return "unknown_key";
    case JsonReason::missing_key: return "missing_key";
    case JsonReason::wrong_type: return "wrong_type";
    case JsonReason::empty: return "empty";
    case JsonReason::out_of_range: return "out_of_range";
    case JsonReason::invalid_name: return "invalid_name";
    case JsonReason::invalid_value: return "invalid_value";
  }
  return "unknown";
}

JsonError::JsonError(JsonReason reason, std::string path, std::string message)
    : std::runtime_error((path.empty() ? std::string("(document)") : path) + ": " +
                         std::string(ReasonName(reason)) + ": " + message),
      reason_(reason),
      path_(std::move(path)),
      message_(std::move(message)) {}

RequestError ToRequestError(const JsonError& error) {
  const auto at = [&](const char* code) {
    return RequestError{code, error.path() + ": " + error.message()};
  };
  switch (error.reason()) {
    // The path of these is made of the client's keys: leave it out.
    case JsonReason::malformed_json: return {"malformed_json", "the body is not valid JSON"};
    case JsonReason::too_deep: return {"too_deep", "the body is " + error.message()};
    case JsonReason::duplicate_key: return {"duplicate_field", "the body repeats a key"};
    case JsonReason::unknown_key: return {"unknown_field", error.message()};
    case JsonReason::missing_key: return at("missing_field");
    case JsonReason::wrong_type:
      if (error.path().empty()) return {"not_an_object", "the body must be a JSON object"};
      return at("wrong_type");
    case JsonReason::empty:
    case JsonReason::out_of_range:
    case JsonReason::invalid_name:
    case JsonReason::invalid_value: return at("invalid_field");
  }
  return at("invalid_field");
}

// JsonValue

bool JsonValue::is_null() const { return node_->is_null(); }

void JsonValue::Fail(JsonReason reason, std::string message) const {
  throw JsonError(reason, path_, std::move(message));
}

void JsonValue::WrongType(const char* expected) const {
  Fail(JsonReason::wrong_type,
       std::string("expected ") + expected + ", got " +
           (node_->is_number_float() && std::string_view(expected) == "an integer"
                ? "a fractional number " + Shown(*node_, *options_)
                : Shown(*node_, *options_)));
}

std::string JsonValue::AsString(const StringRule& rule) const {
  if (!node_->is_string()) WrongType("a string");
  const auto& text = node_->get_ref<const std::string&>();
  if (text.empty() && !rule.allow_empty) Fail(JsonReason::empty, "must not be empty");
  if (text.size() > rule.max_bytes) {
    Fail(JsonReason::out_of_range, "must be at most " + std::to_string(rule.max_bytes) + " bytes");
  }
  return text;
}

std::string JsonValue::AsName(const NameRule& rule) const {
  if (!node_->is_string()) WrongType("a string");
  const auto& text = node_->get_ref<const std::string&>();
  if (!IsValidName(text, rule)) Fail(JsonReason::invalid_name, DescribeNameRule(rule));
  return text;
}

int64_t JsonValue::AsInt(int64_t min, int64_t max) const {
  if (!node_->is_number_integer()) WrongType("an integer");
  const auto range = "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got ";
  // Above INT64_MAX nlohmann keeps an unsigned; compare before converting.
  if (node_->is_number_unsigned() &&
      node_->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    Fail(JsonReason::out_of_range, range + Shown(*node_, *options_));
  }
  const auto number = node_->get<int64_t>();
  if (number < min || number > max) Fail(JsonReason::out_of_range, range + std::to_string(number));
  return number;
}

double JsonValue::AsDouble(const DoubleRange& range) const {
  if (!node_->is_number()) WrongType("a number");
  const auto number = node_->get<double>();
  const bool below = range.min_exclusive ? number <= range.min : number < range.min;
  if (!std::isfinite(number) || below || number > range.max) {
    std::string bounds;
    if (range.min > std::numeric_limits<double>::lowest() || range.min_exclusive) {
      bounds = (range.min_exclusive ? "> " : ">= ") + Number(range.min);
    }
    if (range.max < std::numeric_limits<double>::max()) {
      bounds += (bounds.empty() ? "<= " : " and <= ") + Number(range.max);
    }
    Fail(JsonReason::out_of_range,
         "must be " + (bounds.empty() ? std::string("finite") : bounds) + ", got " +
             Shown(*node_, *options_));
  }
  return number;
}

bool JsonValue::AsBool() const {
  if (!node_->is_boolean()) WrongType("true or false");
  return node_->get<bool>();
}

JsonObject JsonValue::AsObject() const {
  if (!node_->is_object()) WrongType("an object");
  return JsonObject(*this);
}

std::vector<JsonValue> JsonValue::AsArray(bool allow_empty) const {
  if (!node_->is_array()) WrongType("an array");
  if (node_->empty() && !allow_empty) Fail(JsonReason::empty, "must list at least one item");
  std::vector<JsonValue> items;
  items.reserve(node_->size());
  for (size_t i = 0; i < node_->size(); ++i) items.push_back({&(*node_)[i], Index(path_, i), options_});
  return items;
}

std::string JsonValue::Dump() const { return node_->dump(); }

JsonValue JsonValue::WithPath(std::string path) const { return {node_, std::move(path), options_}; }

// JsonObject

bool JsonObject::Has(std::string_view key) const {
  const auto it = self_.node_->find(key);
  return it != self_.node_->end() && !it->is_null();
}

void JsonObject::Know(std::string_view key) const {
  if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
}

JsonValue JsonObject::Member(std::string_view key) const {
  return {&self_.node_->find(key).value(), Join(path(), key), self_.options_};
}

JsonValue JsonObject::Required(std::string_view key) const {
  Know(key);
  if (!self_.node_->contains(key)) FailAt(key, JsonReason::missing_key, "required key is missing");
  return Member(key);
}

std::optional<JsonValue> JsonObject::Optional(std::string_view key) const {
  Know(key);
  if (!self_.node_->contains(key)) return std::nullopt;
  JsonValue value = Member(key);
  if (value.is_null()) return std::nullopt;
  return value;
}

std::string JsonObject::String(std::string_view key, const StringRule& rule) const {
  return Required(key).AsString(rule);
}
std::string JsonObject::Name(std::string_view key, const NameRule& rule) const {
  return Required(key).AsName(rule);
}
int64_t JsonObject::Int(std::string_view key, int64_t min, int64_t max) const {
  return Required(key).AsInt(min, max);
}
double JsonObject::Double(std::string_view key, const DoubleRange& range) const {
  return Required(key).AsDouble(range);
}
bool JsonObject::Bool(std::string_view key) const { return Required(key).AsBool(); }
JsonObject JsonObject::Object(std::string_view key) const { return Required(key).AsObject(); }
std::vector<JsonValue> JsonObject::Array(std::string_view key, bool allow_empty) const {
  return Required(key).AsArray(allow_empty);
}

std::string JsonObject::StringOr(std::string_view key, std::string fallback,
                                 const StringRule& rule) const {
  const auto value = Optional(key);
  return value ? value->AsString(rule) : fallback;
}
int64_t JsonObject::IntOr(std::string_view key, int64_t fallback, int64_t min, int64_t max) const {
  const auto value = Optional(key);
  return value ? value->AsInt(min, max) : fallback;
}
double JsonObject::DoubleOr(std::string_view key, double fallback, const DoubleRange& range) const {
  const auto value = Optional(key);
  return value ? value->AsDouble(range) : fallback;
}
bool JsonObject::BoolOr(std::string_view key, bool fallback) const {
  const auto value = Optional(key);
  return value ? value->AsBool() : fallback;
}
std::optional<JsonObject> JsonObject::OptionalObject(std::string_view key) const {
  const auto value = Optional(key);
  if (!value) return std::nullopt;
  return value->AsObject();
}

std::vector<std::pair<std::string, JsonValue>> JsonObject::Entries() const {
  std::vector<std::pair<std::string, JsonValue>> entries;
  all_taken_ = true;
  for (const auto& [key, value] : self_.node_->items()) {
    if (key == kComment) continue;
    entries.emplace_back(key, Member(key));
  }
  return entries;
}

void JsonObject::Finish() const {
  for (const auto& [key, value] : self_.node_->items()) {
    if (key == kComment) {
      if (!value.is_string()) JsonValue(&value, Join(path(), key), self_.options_).WrongType("a string");
      continue;
    }
    if (!all_taken_ && std::find(known_.begin(), known_.end(), key) == known_.end()) {
      std::string known;
      for (const auto& name : known_) known += (known.empty() ? "" : ", ") + name;
      FailAt(key, JsonReason::unknown_key,
             known.empty() ? "unknown key" : "unknown key (allowed: " + known + ")");
    }
  }
}

void JsonObject::FailAt(std::string_view key, JsonReason reason, std::string message) const {
  throw JsonError(reason, Join(path(), key), std::move(message));
}

// JsonDocument

JsonDocument::JsonDocument() = default;
JsonDocument::JsonDocument(JsonDocument&&) noexcept = default;
JsonDocument& JsonDocument::operator=(JsonDocument&&) noexcept = default;
JsonDocument::~JsonDocument() = default;

JsonDocument JsonDocument::Parse(std::string_view text, const ParseOptions& options) {
  JsonDocument doc;
  doc.options_ = std::make_unique<ParseOptions>(options);
  try {
    doc.tree_ = std::make_unique<json>(
        json::parse(text.begin(), text.end(), StrictnessCheck(options.max_depth)));
  } catch (const json::parse_error& e) {
    // nlohmann's message quotes the text it last read, which may be a secret from a request.
    throw JsonError(JsonReason::malformed_json, "",
                    options.show_values ? std::string("invalid JSON: ") + e.what()
                                        : "invalid JSON at byte " + std::to_string(e.byte));
  } catch (const json::out_of_range&) {  // a number beyond double, e.g. 1e400
    throw JsonError(JsonReason::malformed_json, "", "invalid JSON: a number is out of range");
  }
  return doc;
}

JsonValue JsonDocument::root() const { return {tree_.get(), "", options_.get()}; }

}  // namespace cogo::config
