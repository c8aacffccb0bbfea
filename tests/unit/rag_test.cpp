// The pure pieces of retrieval, from tables of cases: the chunker, document parsing and content
// addresses, the offline hash embedder, MergeHits and the exact and HNSW searches of VectorIndex.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "cogo/providers/hash_embedder.h"
#include "cogo/rag/chunker.h"
#include "cogo/rag/document.h"
#include "cogo/rag/vector_index.h"

namespace cogo::rag {
namespace {

float Dot(const std::vector<float>& a, const std::vector<float>& b) {
  float sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

std::string Words(int n, const std::string& prefix = "word") {
  std::string out;
  for (int i = 0; i < n; ++i) out += (i ? " " : "") + prefix + std::to_string(i);
  return out;
}

TEST(ChunkerTest, SplitsAlongParagraphsAndSentencesWithinTheLimits) {
  struct Case {
    const char* what;
    std::string text;
    ChunkOptions options;
    std::vector<std::string> chunks;
  };
  const std::vector<Case> cases = {
      {"empty", "", {}, {}},
      {"whitespace only", " \n\n\t ", {}, {}},
      {"one short sentence", "  Hello world.  ", {}, {"Hello world."}},
      {"sentences packed up to the limit", "One two. Three four. Five six.", {20, 0, 0},
       {"One two. Three four.", "Five six."}},
      {"a paragraph break ends a chunk holding min_chars", "Aa bb.\n\nCc dd. Ee ff.", {40, 0, 5},
       {"Aa bb.", "Cc dd. Ee ff."}},
      {"a paragraph break below min_chars is crossed", "Aa bb.\n\nCc dd.", {40, 0, 10}, {"Aa bb.\n\nCc dd."}},
      {"overlap repeats the last sentence that fits", "Aaaa. Bbbb. Cccc. Dddd.", {12, 6, 0},
       {"Aaaa. Bbbb.", "Bbbb. Cccc.", "Cccc. Dddd."}},
      {"a long sentence splits between words", "alpha beta gamma delta epsilon", {12, 0, 0},
       {"alpha beta", "gamma delta", "epsilon"}},
      {"a long word splits between UTF-8 characters", "\xC3\xA9\xC3\xA9\xC3\xA9", {3, 0, 0},
       {"\xC3\xA9", "\xC3\xA9", "\xC3\xA9"}},
      {"a period inside a number does not end a sentence", "Version 1.5 is out. Yes.", {20, 0, 0},
       {"Version 1.5 is out.", "Yes."}},
  };
  for (const auto& c : cases) {
    const auto chunks = SplitText(c.text, c.options);
    std::vector<std::string> texts;
    for (const auto& chunk : chunks) {
      texts.push_back(chunk.text);
      EXPECT_EQ(chunk.text, c.text.substr(chunk.start, chunk.end - chunk.start)) << c.what;
      EXPECT_LE(chunk.text.size(), c.options.max_chars) << c.what;
    }
    EXPECT_EQ(texts, c.chunks) << c.what;
  }
}

TEST(ChunkerTest, CoversEveryWordInOrderAndRefusesBadSettings) {
  const std::string text = Words(2000) + ".\n\n" + Words(300, "tail") + ".";
  const auto chunks = SplitText(text);
  ASSERT_GT(chunks.size(), 10u);
  size_t covered = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].ord, i);
    if (chunks[i].start > covered) {  // only whitespace between chunks
      EXPECT_EQ(text.substr(covered, chunks[i].start - covered).find_first_not_of(" \n"), std::string::npos) << i;
    }
    if (i > 0) {
      EXPECT_LT(chunks[i].start, chunks[i - 1].end) << "chunk " << i << " overlaps the one before";
    }
    EXPECT_GT(chunks[i].end, covered) << "chunk " << i << " moves forward";
    covered = chunks[i].end;
  }
  EXPECT_EQ(covered, text.size());
  EXPECT_THROW((void)SplitText("x", {0, 0, 0}), std::invalid_argument);
  EXPECT_THROW((void)SplitText("x", {10, 10, 0}), std::invalid_argument);
}

TEST(ChunkerTest, Utf8Validation) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"plain", true}, {"caf\xC3\xA9", true}, {"\xE2\x82\xAC", true}, {"\xF0\x9F\x98\x80", true},
      {"\xC3", false}, {"\xC0\xAF", false}, {"\xED\xA0\x80", false}, {"\xF4\x90\x80\x80", false},
      {"\xFF", false}, {"a\x80", false}};
  for (const auto& [text, valid] : cases) {
    EXPECT_EQ(IsValidUtf8(text), valid) << text.size();
  }
}

TEST(DocumentTest, ParsesStrictlyAndNamesEveryFailure) {
  struct Case {
    const char* what;
    std::string payload;
    std::string reason;  // "" = accepted
  };
  const std::vector<Case> cases = {
      {"minimal", R"({"doc_id":"d1","title":"T","text":"Some text."})", ""},
      {"everything", R"({"doc_id":"d1","title":"","text":"x","source":"s","metadata":{"a":[1]},"__assignment":{}})", ""},
      {"no doc_id", R"({"title":"T","text":"x"})", "invalid_input"},
      {"doc_id not a string", R"({"doc_id":7,"text":"x"})", "invalid_input"},
      {"text not a string", R"({"doc_id":"d","text":["x"]})", "invalid_input"},
      {"unknown key", R"({"doc_id":"d","text":"x","colour":1})", "invalid_input"},
      {"metadata not an object", R"({"doc_id":"d","text":"x","metadata":"m"})", "invalid_input"},
      {"not JSON", "{", "invalid_input"},
      {"empty text", R"({"doc_id":"d","text":""})", "empty_text"},
      {"whitespace text", R"({"doc_id":"d","text":" \n\t "})", "empty_text"},
      {"oversize", R"({"doc_id":"d","text":")" + std::string(101, 'x') + "\"}", "document_too_large"},
  };
  for (const auto& c : cases) {
    const auto parsed = ParseDocument(c.payload, 100);
    if (c.reason.empty()) {
      EXPECT_TRUE(std::holds_alternative<DocumentInput>(parsed)) << c.what;
    } else {
      ASSERT_TRUE(std::holds_alternative<DocumentError>(parsed)) << c.what;
      EXPECT_EQ(std::get<DocumentError>(parsed).reason, c.reason) << c.what;
    }
  }
}

TEST(DocumentTest, TheContentHashCoversWhatTheChunksAreMadeOf) {
  DocumentInput a{"d", "Title", "Text.", std::nullopt, std::nullopt};
  const std::string base = ContentHash(a, "m", 384, {});
  EXPECT_EQ(base, ContentHash(a, "m", 384, {}));
  EXPECT_EQ(base.size(), 64u);
  std::set<std::string> others;
  auto b = a;
  b.text = "Text!";
  others.insert(ContentHash(b, "m", 384, {}));
  b = a;
  b.title = "Titl";
  others.insert(ContentHash(b, "m", 384, {}));
  b = a;
  b.source = "";
  others.insert(ContentHash(b, "m", 384, {}));
  b = a;
  b.metadata_json = "{}";
  others.insert(ContentHash(b, "m", 384, {}));
  others.insert(ContentHash(a, "m2", 384, {}));
  others.insert(ContentHash(a, "m", 256, {}));
  others.insert(ContentHash(a, "m", 384, {500, 50, 250}));
  EXPECT_EQ(others.size(), 7u);
  EXPECT_EQ(others.count(base), 0u);
}

TEST(HashEmbedderTest, UnitVectorsThatPlaceSharedWordsNear) {
  const providers::HashEmbedder embedder(384);
  const auto v = embedder.EmbedText("Creating an index on a table");
  ASSERT_EQ(v.size(), 384u);
  EXPECT_NEAR(Dot(v, v), 1.0, 1e-5);
  EXPECT_EQ(v, embedder.EmbedText("Creating an index on a table"));  // deterministic
  EXPECT_EQ(embedder.EmbedText("CREATING AN INDEX ON A TABLE"), v);  // case-insensitive
  const auto near = embedder.EmbedText("how to create indexes on tables");
  const auto far = embedder.EmbedText("streaming replication between servers");
  EXPECT_GT(Dot(v, near), Dot(v, far) + 0.15) << "shared stems: index/indexes, table/tables";
  EXPECT_LT(std::fabs(Dot(v, far)), 0.2);
  // Stop words alone carry nothing; a text with no tokens is the zero vector.
  const auto stop = embedder.EmbedText("the of and");
  EXPECT_EQ(Dot(stop, stop), 0.0F);
  EXPECT_EQ(Dot(embedder.EmbedText(" ... "), embedder.EmbedText(" ... ")), 0.0F);
  EXPECT_EQ(providers::HashEmbedder::Tokens("Foo_bar, BAZ-9 caf\xC3\xA9"),
            (std::vector<std::string>{"foo", "bar", "baz", "9", "caf\xC3\xA9"}));
  EXPECT_THROW(providers::HashEmbedder(0), std::invalid_argument);
}

TEST(HashEmbedderTest, EmbedCountsTokensAndRefusesChat) {
  providers::HashEmbedder embedder(64);
  providers::EmbedRequest request;
  request.inputs = {"one two three", "four"};
  const auto response = embedder.Embed(request);
  ASSERT_EQ(response.vectors.size(), 2u);
  EXPECT_EQ(response.usage.input_tokens, 4);
  EXPECT_EQ(response.model, "offline-embed");
  EXPECT_THROW((void)embedder.Chat({}), providers::ProviderError);
}

TEST(MergeHitsTest, BestFirstOnceEachTiesById) {
  struct Case {
    const char* what;
    std::vector<Hit> in;
    size_t k;
    std::vector<int64_t> ids;
  };
  const std::vector<Case> cases = {
      {"empty", {}, 3, {}},
      {"ordered by score", {{1, 0.1F}, {2, 0.9F}, {3, 0.5F}}, 3, {2, 3, 1}},
      {"cut at k", {{1, 0.1F}, {2, 0.9F}, {3, 0.5F}}, 2, {2, 3}},
      {"ties by id", {{9, 0.5F}, {4, 0.5F}, {7, 0.5F}}, 3, {4, 7, 9}},
      {"a chunk once, at its best", {{1, 0.2F}, {2, 0.3F}, {1, 0.8F}}, 3, {1, 2}},
  };
  for (const auto& c : cases) {
    std::vector<int64_t> ids;
    for (const auto& hit : MergeHits(c.in, c.k)) ids.push_back(hit.chunk_id);
    EXPECT_EQ(ids, c.ids) << c.what;
  }
}

TEST(VectorIndexTest, ExactAndHnswAgreeAndTenantsNeverMix) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const auto random_unit = [&](size_t dim) {
    std::vector<float> v(dim);
    float norm = 0;
    for (auto& x : v) {
      x = normal(rng);
      norm += x * x;
    }
    for (auto& x : v) x /= std::sqrt(norm);
    return v;
  };
  VectorIndex index({.dimension = 32, .exact_below = 0});
  for (int64_t id = 1; id <= 3000; ++id) {
    ASSERT_TRUE(index.Add("acme", id, random_unit(32)));
  }
  const auto secret = random_unit(32);
  ASSERT_TRUE(index.Add("globex", 99999, secret));
  EXPECT_FALSE(index.Add("acme", 5, random_unit(32))) << "present already";
  EXPECT_FALSE(index.Add("acme", 4000, random_unit(16))) << "another dimension";
  EXPECT_EQ(index.size(), 3001u);
  EXPECT_EQ(index.size("acme"), 3000u);

  // The globex vector itself as the query: acme's searches never return it.
  for (const auto mode : {SearchMode::exact, SearchMode::hnsw}) {
    for (const auto& hit : index.Search("acme", secret, 10, mode)) {
      EXPECT_NE(hit.chunk_id, 99999);
    }
    const auto own = index.Search("globex", secret, 10, mode);
    ASSERT_EQ(own.size(), 1u);
    EXPECT_NEAR(own[0].score, 1.0, 1e-5);
  }
  EXPECT_TRUE(index.Search("nobody", secret, 10).empty());

  // HNSW recall against exact over 100 queries.
  size_t agree = 0;
  for (int q = 0; q < 100; ++q) {
    const auto query = random_unit(32);
    const auto exact = index.Search("acme", query, 10, SearchMode::exact);
    const auto approx = index.Search("acme", query, 10, SearchMode::hnsw);
    ASSERT_EQ(exact.size(), 10u);
    std::set<int64_t> truth;
    for (const auto& h : exact) truth.insert(h.chunk_id);
    for (const auto& h : approx) agree += truth.count(h.chunk_id);
  }
  EXPECT_GE(static_cast<double>(agree) / 1000.0, 0.95);

  // Removed vectors leave both searches.
  const auto top = index.Search("acme", secret, 1, SearchMode::exact).front().chunk_id;
  EXPECT_TRUE(index.Remove("acme", top));
  EXPECT_FALSE(index.Remove("acme", top));
  for (const auto mode : {SearchMode::exact, SearchMode::hnsw}) {
    for (const auto& hit : index.Search("acme", secret, 20, mode)) {
      EXPECT_NE(hit.chunk_id, top);
    }
  }
  EXPECT_EQ(index.size("acme"), 2999u);
}

}  // namespace
}  // namespace cogo::rag
