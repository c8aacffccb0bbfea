#include "cogo/kg/extract.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "cogo/config/json_reader.h"

namespace cogo::kg {
namespace {

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWordChar(char c) { return IsUpper(c) || IsLower(c) || IsDigit(c) || c == '_' || static_cast<unsigned char>(c) >= 0x80; }
char Lower(char c) { return IsUpper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

struct Token {
  std::string text;
  size_t start = 0;
  bool call = false;  // followed by "()"
};

// Words of one sentence (letters, digits, '_' and non-ASCII bytes), with quoted spans.
std::vector<Token> Words(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    if (!IsWordChar(s[i])) {
      ++i;
      continue;
    }
    const size_t start = i;
    while (i < s.size() && IsWordChar(s[i])) ++i;
    Token t{std::string(s.substr(start, i - start)), start, false};
    if (i + 1 < s.size() && s[i] == '(' && s[i + 1] == ')') {
      t.call = true;
      i += 2;
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<std::string_view> Sentences(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool end = c == '\n' || ((c == '.' || c == '!' || c == '?' || c == ';') &&
                                   (i + 1 == text.size() || std::isspace(static_cast<unsigned char>(text[i + 1]))));
    if (end || i + 1 == text.size()) {
      if (i + 1 > start) out.push_back(text.substr(start, i + 1 - start));
      start = i + 1;
    }
  }
  return out;
}

bool IsIdentifier(const Token& t) {
  if (t.call) return true;
  const std::string& w = t.text;
  const bool has_lower = std::any_of(w.begin(), w.end(), IsLower);
  if (w.find('_') != std::string::npos && w.front() != '_' && w.back() != '_' && has_lower) return true;
  // CamelCase: a lower-case letter followed by a capital inside the word (not "PostgreSQL"'s
  // trailing acronym alone: "pgBench", "MyClass", "getValue").
  for (size_t i = 1; i < w.size(); ++i) {
    if (IsLower(w[i - 1]) && IsUpper(w[i]) && i + 1 < w.size() && IsLower(w[i + 1])) return true;
  }
  return false;
}

// An acronym is all capitals (and digits): SQL, WAL, HTTP2. It stands alone, never inside a run.
bool IsAcronym(const std::string& w) {
  return std::count_if(w.begin(), w.end(), IsUpper) >= 2 && std::none_of(w.begin(), w.end(), IsLower) &&
         w.find('_') == std::string::npos;
}
bool IsCapitalised(const std::string& w) { return !w.empty() && IsUpper(w.front()) && !IsAcronym(w); }

bool IsFunctionWord(const std::string& lower) {
  static const std::set<std::string> kWords = {"a", "an", "the", "this", "that", "these", "those", "it", "its",
                                               "in", "on", "of", "for", "to", "and", "or", "if", "when", "with",
                                               "by", "as", "at", "from", "is", "are", "be", "not", "no", "all",
                                               "each", "every", "some", "any", "you", "we", "they", "he", "she",
                                               "there", "here", "see", "note", "also", "but", "so"};
  return kWords.count(lower) > 0;
}

std::string LowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

// Collects entities and relations with their uniqueness rules.
class Builder {
 public:
  size_t AddEntity(std::string name, std::string type) {
    const std::string norm = NormalizeName(name);
    const auto key = std::make_pair(norm, type);
    if (auto it = index_.find(key); it != index_.end()) return it->second;
    out_.entities.push_back({std::move(name), std::move(type)});
    index_.emplace(key, out_.entities.size() - 1);
    return out_.entities.size() - 1;
  }
  void AddRelation(size_t source, size_t target, std::string type) {
    if (source == target) return;
    if (!relations_.insert({source, target, type}).second) return;
    out_.relations.push_back({source, target, std::move(type)});
  }
  [[nodiscard]] const Extraction& result() const { return out_; }
  [[nodiscard]] std::string norm(size_t i) const { return NormalizeName(out_.entities[i].name); }

 private:
  Extraction out_;
  std::map<std::pair<std::string, std::string>, size_t> index_;
  std::set<std::tuple<size_t, size_t, std::string>> relations_;
};

struct Mention {
  size_t first_word = 0;  // word indexes [first, last]
  size_t last_word = 0;
  size_t entity = 0;
};

void ExtractSentence(std::string_view sentence, Builder& builder) {
  const auto words = Words(sentence);
  std::vector<Mention> mentions;
  std::vector<bool> taken(words.size(), false);
  // Identifiers first, then runs of capitalised words and acronyms.
  for (size_t i = 0; i < words.size(); ++i) {
    if (IsIdentifier(words[i])) {
      mentions.push_back({i, i, builder.AddEntity(words[i].text + (words[i].call ? "()" : ""), "identifier")});
      taken[i] = true;
    }
  }
  static const std::set<std::string> kVerbs = {"uses", "calls", "returns", "contains", "includes", "supports"};
  const auto opens_pattern = [&](size_t w) {  // words[w] is followed by a verb pattern
    if (w + 1 >= words.size()) return false;
    const std::string next = LowerCopy(words[w + 1].text);
    return kVerbs.count(next) > 0 ||
           (next == "is" && w + 2 < words.size() && (LowerCopy(words[w + 2].text) == "a" || LowerCopy(words[w + 2].text) == "an"));
  };
  for (size_t i = 0; i < words.size();) {
    if (!taken[i] && IsAcronym(words[i].text)) {
      mentions.push_back({i, i, builder.AddEntity(words[i].text, "term")});
      ++i;
      continue;
    }
    if (taken[i] || !IsCapitalised(words[i].text)) {
      ++i;
      continue;
    }
    size_t j = i;
    // A run continues through capitalised words separated by single spaces only.
    while (j + 1 < words.size() && !taken[j + 1] && IsCapitalised(words[j + 1].text) &&
           words[j + 1].start == words[j].start + words[j].text.size() + 1) {
      ++j;
    }
    size_t first = i;
    while (first <= j && IsFunctionWord(LowerCopy(words[first].text))) ++first;
    // A lone capitalised word opening the sentence is usually just capitalised ("Tables hold
    // rows"), unless it is the subject of a verb pattern ("Kafka uses ZooKeeper").
    const bool lone_opener = first == j && j == 0 && !opens_pattern(j);
    if (first <= j && !lone_opener) {
      const size_t begin = words[first].start, end = words[j].start + words[j].text.size();
      mentions.push_back({first, j, builder.AddEntity(std::string(sentence.substr(begin, end - begin)), "term")});
    }
    i = j + 1;
  }
  // Quoted terms.
  for (size_t q = sentence.find('"'); q != std::string_view::npos;) {
    const size_t close = sentence.find('"', q + 1);
    if (close == std::string_view::npos) break;
    const auto inner = sentence.substr(q + 1, close - q - 1);
    if (!inner.empty() && inner.size() <= 60 && !NormalizeName(inner).empty()) {
      size_t word = 0;
      while (word < words.size() && words[word].start <= q) ++word;
      mentions.push_back({word, word, builder.AddEntity(std::string(inner), "term")});
    }
    q = sentence.find('"', close + 1);
  }
  std::sort(mentions.begin(), mentions.end(), [](const Mention& a, const Mention& b) { return a.first_word < b.first_word; });

  // Verb patterns: the mention just before the verb and the one (or the plain words) after it.
  std::set<std::pair<size_t, size_t>> patterned;
  for (size_t v = 1; v + 1 < words.size(); ++v) {
    const std::string verb = LowerCopy(words[v].text);
    const bool is_a = verb == "is" && (LowerCopy(words[v + 1].text) == "a" || LowerCopy(words[v + 1].text) == "an");
    if (!is_a && kVerbs.count(verb) == 0) continue;
    const Mention* subject = nullptr;
    for (const auto& m : mentions) {
      if (m.last_word + 1 == v) subject = &m;
    }
    if (subject == nullptr) continue;
    const size_t object_start = is_a ? v + 2 : v + 1;
    std::optional<size_t> object;
    for (const auto& m : mentions) {
      if (m.first_word == object_start || (object_start < words.size() && m.first_word == object_start + 1 &&
                                           IsFunctionWord(LowerCopy(words[object_start].text)))) {
        object = m.entity;
        break;
      }
    }
    if (!object) {  // a plain noun phrase: up to three words before punctuation or a function word
      std::string phrase;
      for (size_t w = object_start; w < words.size() && w < object_start + 3; ++w) {
        const std::string lower = LowerCopy(words[w].text);
        if (IsFunctionWord(lower) || (w > object_start && words[w].start != words[w - 1].start + words[w - 1].text.size() + 1)) break;
        phrase += (phrase.empty() ? "" : " ") + words[w].text;
      }
      if (phrase.empty()) continue;
      object = builder.AddEntity(phrase, "concept");
    }
    builder.AddRelation(subject->entity, *object, is_a ? "is_a" : verb);
    patterned.insert({subject->entity, *object});
  }
  // Co-occurrence of the rest (at most the first 8 mentions: a list sentence is not 28 facts).
  std::vector<size_t> seen;
  for (const auto& m : mentions) {
    if (std::find(seen.begin(), seen.end(), m.entity) == seen.end() && seen.size() < 8) seen.push_back(m.entity);
  }
  for (size_t a = 0; a < seen.size(); ++a) {
    for (size_t b = a + 1; b < seen.size(); ++b) {
      size_t x = seen[a], y = seen[b];
      if (patterned.count({x, y}) > 0 || patterned.count({y, x}) > 0) continue;
      if (builder.norm(y) < builder.norm(x)) std::swap(x, y);
      builder.AddRelation(x, y, "co_occurs");
    }
  }
}

}  // namespace

std::string NormalizeName(std::string_view name) {
  std::string out;
  bool space = false;
  for (const char c : name) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(Lower(c));
  }
  if (out.size() >= 2 && out.compare(out.size() - 2, 2, "()") == 0) out.resize(out.size() - 2);
  const auto punct = [](char c) { return std::ispunct(static_cast<unsigned char>(c)) != 0 && c != '_'; };
  size_t begin = 0, end = out.size();
  while (begin < end && punct(out[begin])) ++begin;
  while (end > begin && punct(out[end - 1])) --end;
  return out.substr(begin, end - begin);
}

Extraction ExtractOffline(std::string_view text) {
  Builder builder;
  for (const auto sentence : Sentences(text)) ExtractSentence(sentence, builder);
  return builder.result();
}

std::string ExtractionSystemPrompt() {
  return "You extract a knowledge graph from text. Answer with one JSON object and nothing else, "
         "exactly this schema:\n"
         R"({"entities": [{"name": "<as written in the text>", "type": "<lower_snake_case kind, e.g. person, )"
         R"(organisation, product, concept, identifier>"}], "relations": [{"source": "<an entity name>", )"
         R"("target": "<an entity name>", "type": "<lower_snake_case verb, e.g. is_a, uses, part_of>"}]})"
         "\nEvery relation's source and target must be names from your entities list. Use only what the "
         "text states. No other keys, no comments, no prose.";
}

std::string ExtractionUserPrompt(std::string_view text) { return "Text:\n" + std::string(text); }

std::variant<Extraction, std::string> ParseExtraction(std::string_view reply) {
  // One surrounding code fence is tolerated (models add them); anything else must be the object.
  std::string_view body = reply;
  const auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  body = trim(body);
  if (body.substr(0, 3) == "```") {
    const size_t line = body.find('\n');
    if (line == std::string_view::npos || body.size() < 6 || body.substr(body.size() - 3) != "```") {
      return std::string("the reply opens a code fence it does not close");
    }
    body = trim(body.substr(line + 1, body.size() - 3 - (line + 1)));
  }
  const auto type_of = [](const config::JsonValue& v) {
    std::string type = v.AsString({.max_bytes = 64});
    for (const char c : type) {
      if (!(IsLower(c) || IsDigit(c) || c == '_')) v.Fail(config::JsonReason::invalid_value, "a type is [a-z0-9_]");
    }
    return type;
  };
  Builder builder;
  try {
    const auto doc = config::JsonDocument::Parse(body, {.max_depth = 8});
    const auto root = doc.root().AsObject();
    std::map<std::string, size_t> by_name;
    for (const auto& value : root.Array("entities")) {
      const auto e = value.AsObject();
      std::string name = e.String("name", {.max_bytes = 200});
      const std::string type = type_of(e.Required("type"));
      e.Finish();
      if (NormalizeName(name).empty()) e.FailAt("name", config::JsonReason::invalid_value, "a name needs a letter or digit");
      const std::string norm = NormalizeName(name);
      by_name.emplace(norm, builder.AddEntity(std::move(name), type));
    }
    for (const auto& value : root.Array("relations")) {
      const auto r = value.AsObject();
      const auto end_of = [&](const char* key) {
        const auto it = by_name.find(NormalizeName(r.String(key, {.max_bytes = 200})));
        if (it == by_name.end()) r.FailAt(key, config::JsonReason::invalid_value, "not one of the entities");
        return it->second;
      };
      const size_t source = end_of("source");
      const size_t target = end_of("target");
      builder.AddRelation(source, target, type_of(r.Required("type")));
      r.Finish();
    }
    root.Finish();
  } catch (const config::JsonError& e) {
    return std::string(e.what());
  }
  return builder.result();
}

}  // namespace cogo::kg
