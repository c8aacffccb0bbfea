// rag::EmbedInBatches over the OpenAI-compatible provider against a local server that speaks the
// /v1/embeddings wire format (FakeOpenAI): batching, a 429 then success, malformed replies.
#include <gtest/gtest.h>

#include <atomic>

#include "cogo/providers/openai_provider.h"
#include "cogo/rag/embedder.h"
#include "fake_openai.h"

namespace cogo::rag {
namespace {

using nlohmann::json;
using testing::FakeOpenAI;
using testing::ReplyJson;

// The embedding of input i is {i+1, 0, 0} (unnormalised: the client normalises).
json Embeddings(const json& inputs, bool reversed = false) {
  json data = json::array();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const size_t index = reversed ? inputs.size() - 1 - i : i;
    data.push_back({{"object", "embedding"}, {"index", index}, {"embedding", {static_cast<double>(index + 1), 0.0, 0.0}}});
  }
  return {{"object", "list"}, {"data", data}, {"model", "emb-test"},
          {"usage", {{"prompt_tokens", 3 * inputs.size()}, {"total_tokens", 3 * inputs.size()}}}};
}

class EmbeddingsClientTest : public ::testing::Test {
 protected:
  providers::OpenAICompatibleProvider Provider() {
    providers::OpenAIProviderOptions options;
    options.base_url = server_.base_url();
    options.read_timeout = std::chrono::milliseconds(2000);
    options.retry_base_delay = std::chrono::milliseconds(10);
    options.max_retries = 2;
    return providers::OpenAICompatibleProvider(options);
  }
  static std::vector<std::string> Texts(int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back("text " + std::to_string(i));
    return out;
  }
  FakeOpenAI server_;
};

TEST_F(EmbeddingsClientTest, BatchesInOrderAndNormalises) {
  server_.Play([](int n, const httplib::Request& request, httplib::Response& response) {
    ReplyJson(response, Embeddings(json::parse(request.body)["input"], n % 2 == 1));  // odd batches out of order
  });
  auto provider = Provider();
  const auto embedded = EmbedInBatches(provider, Texts(7), "emb-test", 3, {});
  const auto seen = server_.seen();
  ASSERT_EQ(seen.size(), 3u) << "7 inputs in batches of 3";
  EXPECT_EQ(seen[0].path, "/v1/embeddings");
  EXPECT_EQ(seen[0].body["model"], "emb-test");
  EXPECT_EQ(seen[0].body["input"], json({"text 0", "text 1", "text 2"}));
  EXPECT_EQ(seen[2].body["input"], json({"text 6"}));
  ASSERT_EQ(embedded.vectors.size(), 7u);
  EXPECT_EQ(embedded.dimension, 3u);
  for (const auto& v : embedded.vectors) {
    EXPECT_FLOAT_EQ(v[0], 1.0F) << "unit length";
  }
  EXPECT_EQ(embedded.usage.input_tokens, 21);
}

TEST_F(EmbeddingsClientTest, ARateLimitIsRetriedThenSucceeds) {
  server_.Play([](int n, const httplib::Request& request, httplib::Response& response) {
    if (n == 0) {
      response.set_header("Retry-After", "0");
      ReplyJson(response, {{"error", {{"message", "slow down"}}}}, 429);
      return;
    }
    ReplyJson(response, Embeddings(json::parse(request.body)["input"]));
  });
  auto provider = Provider();
  const auto embedded = EmbedInBatches(provider, Texts(2), "emb-test", 8, {});
  EXPECT_EQ(embedded.vectors.size(), 2u);
  EXPECT_EQ(server_.seen().size(), 2u);
}

TEST_F(EmbeddingsClientTest, MalformedRepliesAreBadResponsesAndNotRetried) {
  struct Case {
    const char* what;
    std::function<json(const json&)> reply;
  };
  const std::vector<Case> cases = {
      {"a vector short", [](const json& in) { auto r = Embeddings(in); r["data"].erase(r["data"].begin()); return r; }},
      {"mixed dimensions", [](const json& in) { auto r = Embeddings(in); r["data"][1]["embedding"] = {1.0, 2.0}; return r; }},
      {"a string in a vector", [](const json& in) { auto r = Embeddings(in); r["data"][0]["embedding"][0] = "x"; return r; }},
      {"no data", [](const json&) { return json{{"object", "list"}}; }},
  };
  for (const auto& c : cases) {
    FakeOpenAI server;
    server.Play([&](int, const httplib::Request& request, httplib::Response& response) {
      ReplyJson(response, c.reply(json::parse(request.body)["input"]));
    });
    providers::OpenAIProviderOptions options;
    options.base_url = server.base_url();
    options.retry_base_delay = std::chrono::milliseconds(10);
    providers::OpenAICompatibleProvider provider(options);
    try {
      (void)EmbedInBatches(provider, Texts(3), "emb-test", 8, {});
      ADD_FAILURE() << c.what << ": no error";
    } catch (const providers::ProviderError& e) {
      EXPECT_EQ(e.kind(), providers::ProviderErrorKind::kBadResponse) << c.what << ": " << e.what();
      EXPECT_FALSE(e.retryable()) << c.what;
    }
    EXPECT_EQ(server.seen().size(), 1u) << c.what << ": never retried";
  }
}

TEST_F(EmbeddingsClientTest, ServerErrorsExhaustTheRetriesAndStayRetryableForTheBus) {
  server_.Play([](int, const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, {{"error", "overloaded"}}, 503);
  });
  auto provider = Provider();
  try {
    (void)EmbedInBatches(provider, Texts(1), "emb-test", 8, {});
    ADD_FAILURE() << "no error";
  } catch (const providers::ProviderError& e) {
    EXPECT_EQ(e.kind(), providers::ProviderErrorKind::kServerError);
    EXPECT_TRUE(e.retryable());
  }
  EXPECT_EQ(server_.seen().size(), 3u) << "1 + max_retries attempts";
}

}  // namespace
}  // namespace cogo::rag
