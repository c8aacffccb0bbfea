#include "cogo/config/json_reader.h"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cogo::config {
namespace {

using Reason = JsonReason;

// Runs `read` over the parsed `text`; returns the error it raised, if any.
std::optional<JsonError> ErrorOf(const std::string& text,
                                 const std::function<void(const JsonValue&)>& read,
                                 const ParseOptions& options = {}) {
  try {
    const auto doc = JsonDocument::Parse(text, options);
    read(doc.root());
    return std::nullopt;
  } catch (const JsonError& e) {
    return e;
  }
}

// Checks one case's outcome: no error when `reason` is nullopt, else that reason at `path`.
void ExpectOutcome(const char* name, const std::optional<JsonError>& error,
                   const std::optional<Reason>& reason, const std::string& path) {
  if (!reason) {
    EXPECT_FALSE(error) << name << ": " << error->what();
    return;
  }
  ASSERT_TRUE(error) << name;
  EXPECT_EQ(error->reason(), *reason) << name << ": " << error->what();
  EXPECT_EQ(error->path(), path) << name;
  EXPECT_FALSE(error->message().empty()) << name;
}

struct DocumentCase {
  const char* name;
  std::string text;
  int max_depth;
  std::optional<Reason> reason;  // nullopt: parses
  const char* path;
};

TEST(JsonReader, ParseRejectsMalformedDeepAndDuplicateDocuments) {
  const std::vector<DocumentCase> cases = {
      {"object", R"({"a":1})", 4, std::nullopt, ""},
      {"empty text", "", 4, Reason::malformed_json, ""},
      {"truncated", R"({"a":)", 4, Reason::malformed_json, ""},
      {"trailing garbage", R"({} x)", 4, Reason::malformed_json, ""},
      {"number beyond double", R"({"d":1e400})", 4, Reason::malformed_json, ""},
      {"invalid utf-8", "{\"a\":\"\xff\"}", 4, Reason::malformed_json, ""},
      {"depth at the limit", R"({"a":[{"b":[1]}]})", 4, std::nullopt, ""},
      {"one past the limit", R"({"a":[{"b":[{}]}]})", 4, Reason::too_deep, "a[0].b[0]"},
      {"brackets in strings do not nest", R"({"m":"[[[[[{{{{"})", 1, std::nullopt, ""},
      {"escaped quote stays in the string", R"({"a":"{[\"{"})", 1, std::nullopt, ""},
      {"unterminated deep text", std::string(100000, '['), 8, Reason::too_deep,
       "[0][0][0][0][0][0][0][0]"},
      {"duplicate top key", R"({"a":1,"b":2,"a":3})", 4, Reason::duplicate_key, "a"},
      {"duplicate nested key", R"({"a":{"x":1,"x":1}})", 4, Reason::duplicate_key, "a.x"},
      {"duplicate inside an array item", R"({"r":[{"k":1},{"k":1,"k":2}]})", 4,
       Reason::duplicate_key, "r[1].k"},
      {"same key in sibling objects is fine", R"({"a":{"k":1},"b":{"k":1}})", 4, std::nullopt, ""},
      {"scalar document", "42", 4, std::nullopt, ""},
  };
  for (const auto& c : cases) {
    ExpectOutcome(c.name, ErrorOf(c.text, [](const JsonValue&) {}, {c.max_depth, false}), c.reason, c.path);
  }
}

struct ReadCase {
  const char* name;
  const char* text;
  std::function<void(const JsonObject&)> read;
  std::optional<Reason> reason;  // nullopt: reads
  const char* path;
};

TEST(JsonReader, GettersCheckTypeAndRangeNamingThePath) {
  const std::vector<ReadCase> cases = {
      // strings
      {"string", R"({"s":"x"})", [](const JsonObject& o) { EXPECT_EQ(o.String("s"), "x"); }, std::nullopt, ""},
      {"string missing", R"({})", [](const JsonObject& o) { (void)o.String("s"); }, Reason::missing_key, "s"},
      {"string null", R"({"s":null})", [](const JsonObject& o) { (void)o.String("s"); }, Reason::wrong_type, "s"},
      {"string number", R"({"s":1})", [](const JsonObject& o) { (void)o.String("s"); }, Reason::wrong_type, "s"},
      {"string empty", R"({"s":""})", [](const JsonObject& o) { (void)o.String("s"); }, Reason::empty, "s"},
      {"string empty allowed", R"({"s":""})", [](const JsonObject& o) { (void)o.String("s", {.allow_empty = true}); }, std::nullopt, ""},
      {"string too long", R"({"s":"abcd"})", [](const JsonObject& o) { (void)o.String("s", {.max_bytes = 3}); }, Reason::out_of_range, "s"},
      // names
      {"name", R"({"t":"Acme-1.x_y"})", [](const JsonObject& o) { (void)o.Name("t", kTenantName); }, std::nullopt, ""},
      {"intent upper case", R"({"i":"Chat"})", [](const JsonObject& o) { (void)o.Name("i", kIntentName); }, Reason::invalid_name, "i"},
      {"name empty", R"({"i":""})", [](const JsonObject& o) { (void)o.Name("i", kIntentName); }, Reason::invalid_name, "i"},
      {"name with space", R"({"t":"ac me"})", [](const JsonObject& o) { (void)o.Name("t", kTenantName); }, Reason::invalid_name, "t"},
      {"name not a string", R"({"t":7})", [](const JsonObject& o) { (void)o.Name("t", kTenantName); }, Reason::wrong_type, "t"},
      // integers
      {"int", R"({"n":5})", [](const JsonObject& o) { EXPECT_EQ(o.Int("n", 1, 5), 5); }, std::nullopt, ""},
      {"int below", R"({"n":0})", [](const JsonObject& o) { (void)o.Int("n", 1, 5); }, Reason::out_of_range, "n"},
      {"int above", R"({"n":6})", [](const JsonObject& o) { (void)o.Int("n", 1, 5); }, Reason::out_of_range, "n"},
      {"int fractional", R"({"n":1.5})", [](const JsonObject& o) { (void)o.Int("n"); }, Reason::wrong_type, "n"},
      {"int written 1.0", R"({"n":1.0})", [](const JsonObject& o) { (void)o.Int("n"); }, Reason::wrong_type, "n"},
      {"int string", R"({"n":"5"})", [](const JsonObject& o) { (void)o.Int("n"); }, Reason::wrong_type, "n"},
      {"int over int64", R"({"n":9223372036854775808})", [](const JsonObject& o) { (void)o.Int("n"); }, Reason::out_of_range, "n"},
      {"int64 max", R"({"n":9223372036854775807})", [](const JsonObject& o) { EXPECT_EQ(o.Int("n"), INT64_MAX); }, std::nullopt, ""},
      {"int negative", R"({"n":-3})", [](const JsonObject& o) { EXPECT_EQ(o.Int("n", -3, 0), -3); }, std::nullopt, ""},
      // doubles
      {"double from integer", R"({"d":2})", [](const JsonObject& o) { EXPECT_EQ(o.Double("d", DoubleRange::Positive()), 2.0); }, std::nullopt, ""},
      {"double zero not positive", R"({"d":0})", [](const JsonObject& o) { (void)o.Double("d", DoubleRange::Positive()); }, Reason::out_of_range, "d"},
      {"double at inclusive min", R"({"d":0})", [](const JsonObject& o) { (void)o.Double("d", DoubleRange::AtLeast(0)); }, std::nullopt, ""},
      {"double over max", R"({"d":1.5})", [](const JsonObject& o) { (void)o.Double("d", DoubleRange::Between(0, 1)); }, Reason::out_of_range, "d"},
      {"double bool", R"({"d":true})", [](const JsonObject& o) { (void)o.Double("d"); }, Reason::wrong_type, "d"},
      // booleans, objects, arrays
      {"bool", R"({"b":false})", [](const JsonObject& o) { EXPECT_FALSE(o.Bool("b")); }, std::nullopt, ""},
      {"bool as 0", R"({"b":0})", [](const JsonObject& o) { (void)o.Bool("b"); }, Reason::wrong_type, "b"},
      {"object nested path", R"({"a":{"b":{"c":"x"}}})", [](const JsonObject& o) { (void)o.Object("a").Object("b").Int("c"); }, Reason::wrong_type, "a.b.c"},
      {"object wrong type", R"({"a":[]})", [](const JsonObject& o) { (void)o.Object("a"); }, Reason::wrong_type, "a"},
      {"array item path", R"({"r":[{"c":1},{"c":"x"}]})",
       [](const JsonObject& o) { for (const auto& item : o.Array("r")) (void)item.AsObject().Int("c"); },
       Reason::wrong_type, "r[1].c"},
      {"array empty refused", R"({"r":[]})", [](const JsonObject& o) { (void)o.Array("r", false); }, Reason::empty, "r"},
      {"array wrong type", R"({"r":{}})", [](const JsonObject& o) { (void)o.Array("r"); }, Reason::wrong_type, "r"},
      // optional keys
      {"optional absent", R"({})", [](const JsonObject& o) { EXPECT_EQ(o.IntOr("n", 7, 0, 9), 7); }, std::nullopt, ""},
      {"optional null", R"({"n":null})", [](const JsonObject& o) { EXPECT_EQ(o.IntOr("n", 7, 0, 9), 7); }, std::nullopt, ""},
      {"optional present is checked", R"({"n":10})", [](const JsonObject& o) { (void)o.IntOr("n", 7, 0, 9); }, Reason::out_of_range, "n"},
      {"optional string", R"({"s":"v"})", [](const JsonObject& o) { EXPECT_EQ(o.StringOr("s", "d"), "v"); }, std::nullopt, ""},
      {"optional double", R"({})", [](const JsonObject& o) { EXPECT_EQ(o.DoubleOr("d", 0.5), 0.5); }, std::nullopt, ""},
      {"optional bool wrong", R"({"b":"yes"})", [](const JsonObject& o) { (void)o.BoolOr("b", true); }, Reason::wrong_type, "b"},
      {"optional object absent", R"({})", [](const JsonObject& o) { EXPECT_FALSE(o.OptionalObject("a")); }, std::nullopt, ""},
      {"optional object wrong", R"({"a":1})", [](const JsonObject& o) { (void)o.OptionalObject("a"); }, Reason::wrong_type, "a"},
      // the reader's own checks
      {"fail at a key", R"({"lo":5,"hi":1})", [](const JsonObject& o) { o.FailAt("hi", Reason::invalid_value, "must be >= lo"); }, Reason::invalid_value, "hi"},
      {"fail at a value", R"({"a":{"b":1}})", [](const JsonObject& o) { o.Object("a").Required("b").Fail(Reason::invalid_value, "no"); }, Reason::invalid_value, "a.b"},
      {"embedded document has its own paths", R"({"env":{"x":"1"}})", [](const JsonObject& o) { (void)o.Required("env").WithPath("").AsObject().Int("x"); }, Reason::wrong_type, "x"},
  };
  for (const auto& c : cases) {
    ExpectOutcome(c.name, ErrorOf(c.text, [&](const JsonValue& root) { c.read(root.AsObject()); }), c.reason, c.path);
  }
}

TEST(JsonReader, FinishRejectsKeysNotTakenAndAllowsComments) {
  const std::vector<ReadCase> cases = {
      {"all taken", R"({"a":1,"b":2})", [](const JsonObject& o) { (void)o.Int("a"); (void)o.IntOr("b", 0); o.Finish(); }, std::nullopt, ""},
      {"one unknown", R"({"a":1,"colour":2})", [](const JsonObject& o) { (void)o.Int("a"); o.Finish(); }, Reason::unknown_key, "colour"},
      {"nested unknown", R"({"a":{"b":1,"z":0}})", [](const JsonObject& o) { auto a = o.Object("a"); (void)a.Int("b"); a.Finish(); }, Reason::unknown_key, "a.z"},
      {"asked-for absent key is still unknown elsewhere", R"({"x":1})", [](const JsonObject& o) { (void)o.IntOr("y", 0); o.Finish(); }, Reason::unknown_key, "x"},
      {"comment allowed", R"({"_comment":"why","a":1})", [](const JsonObject& o) { (void)o.Int("a"); o.Finish(); }, std::nullopt, ""},
      {"comment must be a string", R"({"_comment":1})", [](const JsonObject& o) { o.Finish(); }, Reason::wrong_type, "_comment"},
      {"entries take every key but the comment", R"({"_comment":"m","x":1,"y":2})",
       [](const JsonObject& o) { EXPECT_EQ(o.Entries().size(), 2u); o.Finish(); }, std::nullopt, ""},
      {"entries paths", R"({"rules":{"chat":{"t":1}}})",
       [](const JsonObject& o) { for (const auto& [key, v] : o.Object("rules").Entries()) { auto r = v.AsObject(); r.Finish(); } },
       Reason::unknown_key, "rules.chat.t"},
  };
  for (const auto& c : cases) {
    ExpectOutcome(c.name, ErrorOf(c.text, [&](const JsonValue& root) { c.read(root.AsObject()); }), c.reason, c.path);
  }
}

TEST(JsonReader, UnknownKeyMessageListsTheKeysAskedFor) {
  const auto error = ErrorOf(R"({"base":1})", [](const JsonValue& root) {
    const auto o = root.AsObject();
    (void)o.IntOr("base_ms", 0);
    (void)o.IntOr("cap_ms", 0);
    o.Finish();
  });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->message(), "unknown key (allowed: base_ms, cap_ms)");
  EXPECT_STREQ(error->what(), "base: unknown_key: unknown key (allowed: base_ms, cap_ms)");
}

TEST(JsonReader, MessagesQuoteStringsOnlyWhenShowValuesIsSet) {
  const std::string text = R"({"n":"sk-secret-value"})";
  const auto read = [](const JsonValue& root) { (void)root.AsObject().Int("n"); };
  const auto hidden = ErrorOf(text, read);
  ASSERT_TRUE(hidden);
  EXPECT_EQ(std::string(hidden->what()).find("sk-secret"), std::string::npos) << hidden->what();
  EXPECT_EQ(hidden->message(), "expected an integer, got a string");
  const auto shown = ErrorOf(text, read, {64, true});
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->message(), "expected an integer, got \"sk-secret-value\"");
  // nlohmann's own parse message quotes what it last read; without show_values it is dropped.
  const auto malformed = ErrorOf(R"({"token":"sk-secret-value)", [](const JsonValue&) {});
  ASSERT_TRUE(malformed);
  EXPECT_EQ(std::string(malformed->what()).find("sk-secret"), std::string::npos) << malformed->what();
  EXPECT_NE(malformed->message().find("invalid JSON"), std::string::npos);
}

TEST(JsonReader, DumpAndReasonNames) {
  const auto doc = JsonDocument::Parse(R"({"payload":{"b":[1,2],"a":"x"}})");
  EXPECT_EQ(doc.root().AsObject().Required("payload").Dump(), R"({"a":"x","b":[1,2]})");
  EXPECT_EQ(ReasonName(Reason::unknown_key), "unknown_key");
  EXPECT_EQ(ReasonName(Reason::duplicate_key), "duplicate_key");
  EXPECT_EQ(ReasonName(Reason::malformed_json), "malformed_json");
  EXPECT_EQ(ReasonName(Reason::invalid_value), "invalid_value");
}

struct NameCase {
  const char* name;
  const NameRule* rule;
  bool valid;
};

TEST(Names, TenantAndIntentRules) {
  const std::string longest_intent(64, 'a');
  const std::string too_long_intent(65, 'a');
  const std::string longest_tenant(128, 'A');
  const std::string too_long_tenant(129, 'A');
  const std::vector<NameCase> cases = {
      {"chat", &kIntentName, true},
      {"code.build-test_2", &kIntentName, true},
      {"Chat", &kIntentName, false},
      {"", &kIntentName, false},
      {"a b", &kIntentName, false},
      {"a/b", &kIntentName, false},
      {"é", &kIntentName, false},
      {longest_intent.c_str(), &kIntentName, true},
      {too_long_intent.c_str(), &kIntentName, false},
      {"Acme-Corp.eu_1", &kTenantName, true},
      {"", &kTenantName, false},
      {"acme corp", &kTenantName, false},
      {longest_tenant.c_str(), &kTenantName, true},
      {too_long_tenant.c_str(), &kTenantName, false},
  };
  for (const auto& c : cases) EXPECT_EQ(IsValidName(c.name, *c.rule), c.valid) << c.name;
  EXPECT_EQ(DescribeNameRule(kIntentName), "intent must be 1..64 characters of a-z 0-9 . _ -");
  EXPECT_EQ(DescribeNameRule(kTenantName), "tenant must be 1..128 characters of A-Z a-z 0-9 . _ -");
}

}  // namespace
}  // namespace cogo::config
