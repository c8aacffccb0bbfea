#include "cogo/providers/offline_provider.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

namespace cogo::providers {
namespace {

ChatRequest Ask(std::string text, std::string model = "any-model") {
  ChatRequest request;
  request.model = std::move(model);
  request.messages = {{"system", "be brief"}, {"user", std::move(text)}};
  return request;
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

TEST(OfflineProvider, ChatIsDeterministicAndLabelled) {
  DeterministicOfflineProvider provider;
  const ChatResponse first = provider.Chat(Ask("what is the capital of France"));
  const ChatResponse again = DeterministicOfflineProvider().Chat(Ask("what is the capital of France"));
  EXPECT_EQ(first.content, again.content);
  EXPECT_EQ(first.content.rfind("[offline-deterministic] reply to: what is the capital of France (digest ", 0), 0u)
      << first.content;
  EXPECT_EQ(first.finish_reason, "stop");
  EXPECT_EQ(first.model, "any-model");
  EXPECT_EQ(first.usage.input_tokens, 2 + 6);  // "be brief" + the question
  EXPECT_EQ(first.usage.output_tokens, DeterministicOfflineProvider::CountWords(first.content));
  EXPECT_EQ(first.usage.cost_usd, 0.0);
  EXPECT_TRUE(first.usage_reported);

  EXPECT_NE(provider.Chat(Ask("what is the capital of Spain")).content, first.content);
  EXPECT_NE(provider.Chat(Ask("what is the capital of France", "other-model")).content,
            first.content);  // the digest covers the model
}

// Pinned so a change to the hashing (which would change every stored dev fixture) is noticed.
TEST(OfflineProvider, OutputIsStableAcrossBuilds) {
  DeterministicOfflineProvider provider(OfflineProviderOptions{4, {}});
  EXPECT_EQ(provider.Chat(Ask("hello")).content,
            "[offline-deterministic] reply to: hello (digest cfa32ce6e50234ec)");
  const std::vector<float> vector = provider.EmbedText("hello world");
  const float expected[] = {0.989297f, 0.140878f, -0.0305435f, -0.0226476f};
  ASSERT_EQ(vector.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(vector[i], expected[i], 1e-5) << i;
}

TEST(OfflineProvider, MaxTokensTruncatesWithLengthReason) {
  DeterministicOfflineProvider provider;
  ChatRequest request = Ask("one two three four five");
  request.max_tokens = 3;
  const ChatResponse response = provider.Chat(request);
  EXPECT_EQ(response.content, "[offline-deterministic] reply to:");
  EXPECT_EQ(response.usage.output_tokens, 3);
  EXPECT_EQ(response.finish_reason, "length");
}

TEST(OfflineProvider, CountWords) {
  EXPECT_EQ(DeterministicOfflineProvider::CountWords(""), 0);
  EXPECT_EQ(DeterministicOfflineProvider::CountWords("   \t\n"), 0);
  EXPECT_EQ(DeterministicOfflineProvider::CountWords("a"), 1);
  EXPECT_EQ(DeterministicOfflineProvider::CountWords("  a  b\tc\nd "), 4);
}

TEST(OfflineProvider, EmbeddingsAreUnitLengthDeterministicAndWordSensitive) {
  OfflineProviderOptions options;
  options.embedding_dimension = 32;
  DeterministicOfflineProvider provider(options);
  EmbedRequest request;
  request.inputs = {"the cat sat on the mat", "the cat sat on the mat", "a cat sat on a mat",
                    "quarterly revenue forecast spreadsheet", ""};
  const EmbedResponse response = provider.Embed(request);
  ASSERT_EQ(response.vectors.size(), 5u);
  EXPECT_EQ(response.model, "offline-deterministic");
  EXPECT_EQ(response.usage.input_tokens, 6 + 6 + 6 + 4 + 0);
  for (const auto& vector : response.vectors) {
    ASSERT_EQ(vector.size(), 32u);
    EXPECT_NEAR(Dot(vector, vector), 1.0, 1e-5);
  }
  EXPECT_EQ(response.vectors[0], response.vectors[1]);
  EXPECT_EQ(response.vectors[0], provider.EmbedText("the cat sat on the mat"));
  // Shared words pull vectors together; unrelated text stays far.
  EXPECT_GT(Dot(response.vectors[0], response.vectors[2]),
            Dot(response.vectors[0], response.vectors[3]) + 0.2);
}

TEST(OfflineProvider, PricerAndControl) {
  OfflineProviderOptions options;
  options.pricer = [](const std::string& model, int64_t in, int64_t out) {
    return model == "priced" ? static_cast<double>(in) * 0.001 + static_cast<double>(out) * 0.002
                             : 0.0;
  };
  DeterministicOfflineProvider provider(options);
  const ChatResponse response = provider.Chat(Ask("hello there", "priced"));
  EXPECT_DOUBLE_EQ(response.usage.cost_usd, 0.001 * 4 + 0.002 * static_cast<double>(response.usage.output_tokens));

  std::stop_source stop;
  stop.request_stop();
  ChatRequest cancelled = Ask("x");
  cancelled.control.stop = stop.get_token();
  try {
    (void)provider.Chat(cancelled);
    FAIL() << "expected ProviderError";
  } catch (const ProviderError& e) {
    EXPECT_EQ(e.kind(), ProviderErrorKind::kCancelled);
    EXPECT_FALSE(e.retryable());
  }
  EmbedRequest late;
  late.inputs = {"x"};
  late.control.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  try {
    (void)provider.Embed(late);
    FAIL() << "expected ProviderError";
  } catch (const ProviderError& e) {
    EXPECT_EQ(e.kind(), ProviderErrorKind::kTimeout);
  }
  EXPECT_THROW(DeterministicOfflineProvider(OfflineProviderOptions{0, {}}), std::invalid_argument);
}

}  // namespace
}  // namespace cogo::providers
