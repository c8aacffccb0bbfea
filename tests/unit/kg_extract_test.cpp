// The knowledge-graph extractors' pure parts from tables: name normalisation, the offline rules,
// and the strict parser of a chat model's reply.
#include "cogo/kg/extract.h"

#include <gtest/gtest.h>

#include <set>

namespace cogo::kg {
namespace {

std::set<std::string> Names(const Extraction& e) {
  std::set<std::string> out;
  for (const auto& entity : e.entities) out.insert(entity.type + ":" + entity.name);
  return out;
}

std::set<std::string> Triples(const Extraction& e) {
  std::set<std::string> out;
  for (const auto& r : e.relations) {
    out.insert(NormalizeName(e.entities[r.source].name) + " -" + r.type + "-> " + NormalizeName(e.entities[r.target].name));
  }
  return out;
}

TEST(KgExtractTest, NormalizeName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"PostgreSQL", "postgresql"}, {"  Write-Ahead   Log ", "write-ahead log"}, {"\"vacuum\"", "vacuum"},
      {"pg_dump()", "pg_dump"},     {"...", ""},                             {"B-tree,", "b-tree"},
  };
  for (const auto& [in, out] : cases) {
    EXPECT_EQ(NormalizeName(in), out) << in;
  }
}

TEST(KgExtractTest, OfflineRulesFindEntitiesAndRelations) {
  struct Case {
    const char* what;
    std::string text;
    std::set<std::string> entities;  // a subset that must be found
    std::set<std::string> relations;  // a subset that must be found
    std::set<std::string> absent;     // entities that must not be
  };
  const std::vector<Case> cases = {
      {"capitalised runs and is_a", "PostgreSQL is a relational database. It was built at Berkeley University.",
       {"term:PostgreSQL", "concept:relational database", "term:Berkeley University"},
       {"postgresql -is_a-> relational database"},
       {"term:It"}},
      {"a lone capitalised word opening a sentence is not an entity", "Tables hold rows.", {}, {}, {"term:Tables"}},
      {"acronyms, identifiers and verbs", "The planner uses pg_statistic to estimate rows. Use SQL with pg_dump().",
       {"identifier:pg_statistic", "identifier:pg_dump()", "term:SQL"}, {}, {"term:The"}},
      {"a verb between two entities", "The Query Planner uses pg_statistic.",
       {"term:Query Planner", "identifier:pg_statistic"}, {"query planner -uses-> pg_statistic"}, {}},
      {"co-occurrence within a sentence, ordered by name", "Ann met Bob in Paris.",
       {"term:Bob", "term:Paris"}, {"bob -co_occurs-> paris"}, {"term:Ann"}},
      {"quoted terms", "Set \"work_mem\" before sorting.", {"term:work_mem"}, {}, {}},
      {"CamelCase", "Call getValue on MyClass objects.", {"identifier:getValue", "identifier:MyClass"},
       {"getvalue -co_occurs-> myclass"}, {}},
  };
  for (const auto& c : cases) {
    const auto e = ExtractOffline(c.text);
    const auto names = Names(e);
    const auto triples = Triples(e);
    for (const auto& want : c.entities) {
      EXPECT_TRUE(names.count(want)) << c.what << ": missing " << want;
    }
    for (const auto& want : c.relations) {
      EXPECT_TRUE(triples.count(want)) << c.what << ": missing " << want;
    }
    for (const auto& bad : c.absent) {
      EXPECT_FALSE(names.count(bad)) << c.what << ": found " << bad;
    }
    for (const auto& r : e.relations) {
      EXPECT_NE(r.source, r.target) << c.what;
    }
  }
  EXPECT_TRUE(ExtractOffline("").entities.empty());
  // Deterministic, and one entity per (name, type) however often it is said.
  const std::string text = "Kafka uses ZooKeeper. Kafka uses ZooKeeper. Kafka is fast.";
  const auto e = ExtractOffline(text);
  EXPECT_EQ(Names(e), Names(ExtractOffline(text)));
  EXPECT_EQ(std::count_if(e.entities.begin(), e.entities.end(), [](const Entity& x) { return x.name == "Kafka"; }), 1);
  EXPECT_EQ(Triples(e).count("kafka -uses-> zookeeper"), 1u);
}

TEST(KgExtractTest, ParsesARepliesStrictly) {
  struct Case {
    const char* what;
    std::string reply;
    bool ok;
  };
  const std::vector<Case> cases = {
      {"valid", R"({"entities":[{"name":"Ann","type":"person"},{"name":"Acme","type":"organisation"}],
                   "relations":[{"source":"Ann","target":"acme","type":"works_at"}]})", true},
      {"empty lists", R"({"entities":[],"relations":[]})", true},
      {"inside a fence", "```json\n{\"entities\":[],\"relations\":[]}\n```", true},
      {"prose around it", "Here you go: {\"entities\":[],\"relations\":[]}", false},
      {"an unclosed fence", "```json\n{\"entities\":[],\"relations\":[]}", false},
      {"missing relations", R"({"entities":[]})", false},
      {"an extra key", R"({"entities":[],"relations":[],"note":"x"})", false},
      {"an entity key too many", R"({"entities":[{"name":"A","type":"t","why":"x"}],"relations":[]})", false},
      {"a type with spaces", R"({"entities":[{"name":"A","type":"big thing"}],"relations":[]})", false},
      {"a relation to an unknown entity",
       R"({"entities":[{"name":"A","type":"t"}],"relations":[{"source":"A","target":"B","type":"r"}]})", false},
      {"a name of punctuation", R"({"entities":[{"name":"--","type":"t"}],"relations":[]})", false},
      {"duplicate keys", R"({"entities":[],"entities":[],"relations":[]})", false},
      {"not JSON", "I could not find any entities.", false},
  };
  for (const auto& c : cases) {
    const auto parsed = ParseExtraction(c.reply);
    EXPECT_EQ(std::holds_alternative<Extraction>(parsed), c.ok) << c.what;
  }
  const auto parsed = std::get<Extraction>(ParseExtraction(cases[0].reply));
  EXPECT_EQ(Triples(parsed), (std::set<std::string>{"ann -works_at-> acme"}));
  // The error names what is wrong without repeating the reply's text.
  const auto error = std::get<std::string>(ParseExtraction(R"({"entities":[{"name":"Secret Name","type":"bad type"}],"relations":[]})"));
  EXPECT_NE(error.find("entities[0].type"), std::string::npos) << error;
  EXPECT_EQ(error.find("Secret Name"), std::string::npos) << error;
}

}  // namespace
}  // namespace cogo::kg
