// OpenAICompatibleProvider against a real cpp-httplib server on 127.0.0.1 that speaks the
// OpenAI wire format and plays a script per test (the test double stands in for the hosted API).
#include "cogo/providers/openai_provider.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "fake_openai.h"

namespace cogo::providers {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::FakeOpenAI;
using testing::ReplyJson;

constexpr const char* kApiKey = "sk-test-0123456789abcdef";

json ChatCompletion(const std::string& content, int prompt_tokens = 11, int completion_tokens = 7) {
  return {{"id", "chatcmpl-1"},
          {"object", "chat.completion"},
          {"model", "gpt-test-2024"},
          {"choices",
           {{{"index", 0},
             {"message", {{"role", "assistant"}, {"content", content}}},
             {"finish_reason", "stop"}}}},
          {"usage",
           {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}}}};
}

void ReplyError(httplib::Response& response, int status, const std::string& message) {
  ReplyJson(response, {{"error", {{"message", message}, {"type", "test_error"}, {"code", nullptr}}}},
            status);
}

class OpenAIProviderTest : public ::testing::Test {
 protected:
  OpenAIProviderOptions Options() {
    OpenAIProviderOptions options;
    options.base_url = server_.base_url();
    options.api_key = kApiKey;
    options.connect_timeout = milliseconds(1000);
    options.read_timeout = milliseconds(3000);
    options.max_retries = 2;
    options.retry_base_delay = milliseconds(10);
    options.retry_max_delay = milliseconds(2000);
    options.on_retry = [this](const RetryNotice& notice) { retries_.push_back(notice); };
    return options;
  }

  static ChatRequest Hello() {
    ChatRequest request;
    request.model = "gpt-test";
    request.messages = {{"system", "be brief"}, {"user", "hello"}};
    return request;
  }

  // Runs `call`, which must throw ProviderError, and returns it.
  template <typename Call>
  static ProviderError Failure(Call&& call) {
    try {
      call();
    } catch (const ProviderError& e) {
      return e;
    }
    ADD_FAILURE() << "expected a ProviderError";
    return ProviderError(ProviderErrorKind::kBadResponse, "none");
  }

  FakeOpenAI server_;
  std::vector<RetryNotice> retries_;
};

TEST_F(OpenAIProviderTest, ChatSendsTheWireFormatAndParsesTheAnswer) {
  server_.Play([](int, const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, ChatCompletion("Hi there."));
  });
  auto options = Options();
  options.pricer = [](const std::string& model, int64_t in, int64_t out) {
    return model == "gpt-test" ? static_cast<double>(in) * 1e-6 + static_cast<double>(out) * 2e-6
                               : -1.0;
  };
  OpenAICompatibleProvider provider(options);
  ChatRequest request = Hello();
  request.max_tokens = 64;
  request.temperature = 0.25;
  const ChatResponse response = provider.Chat(request);

  EXPECT_EQ(response.content, "Hi there.");
  EXPECT_EQ(response.finish_reason, "stop");
  EXPECT_EQ(response.model, "gpt-test-2024");
  EXPECT_EQ(response.usage.input_tokens, 11);
  EXPECT_EQ(response.usage.output_tokens, 7);
  EXPECT_TRUE(response.usage_reported);
  EXPECT_DOUBLE_EQ(response.usage.cost_usd, 11e-6 + 14e-6);  // priced by the request's model

  const auto seen = server_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/v1/chat/completions");
  EXPECT_EQ(seen[0].authorization, std::string("Bearer ") + kApiKey);
  EXPECT_EQ(seen[0].content_type, "application/json");
  const json expected = {{"model", "gpt-test"},
                         {"messages",
                          {{{"role", "system"}, {"content", "be brief"}},
                           {{"role", "user"}, {"content", "hello"}}}},
                         {"stream", false},
                         {"max_tokens", 64},
                         {"temperature", 0.25}};
  EXPECT_EQ(seen[0].body, expected);
}

TEST_F(OpenAIProviderTest, ChatToleratesNullContentAndMissingUsage) {
  server_.Play([](int, const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, {{"choices",
                          {{{"message", {{"role", "assistant"}, {"content", nullptr}}},
                            {"finish_reason", nullptr}}}}});
  });
  auto options = Options();
  options.api_key.clear();  // local servers: no Authorization header at all
  OpenAICompatibleProvider provider(options);
  const ChatResponse response = provider.Chat(Hello());
  EXPECT_EQ(response.content, "");
  EXPECT_EQ(response.finish_reason, "");
  EXPECT_EQ(response.model, "gpt-test");
  EXPECT_FALSE(response.usage_reported);
  EXPECT_EQ(response.usage.total_tokens(), 0);
  EXPECT_EQ(server_.seen().at(0).authorization, "");
}

TEST_F(OpenAIProviderTest, EmbeddingsAreReturnedInInputOrder) {
  server_.Play([](int, const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, {{"object", "list"},
                         {"model", "embed-test"},
                         {"data",
                          {{{"object", "embedding"}, {"index", 1}, {"embedding", {0.0, 1.0}}},
                           {{"object", "embedding"}, {"index", 0}, {"embedding", {1.0, 0.0}}}}},
                         {"usage", {{"prompt_tokens", 5}, {"total_tokens", 5}}}});
  });
  OpenAICompatibleProvider provider(Options());
  EmbedRequest request;
  request.model = "embed-test";
  request.inputs = {"first", "second text"};
  const EmbedResponse response = provider.Embed(request);
  ASSERT_EQ(response.vectors.size(), 2u);
  EXPECT_EQ(response.vectors[0], (std::vector<float>{1.0f, 0.0f}));
  EXPECT_EQ(response.vectors[1], (std::vector<float>{0.0f, 1.0f}));
  EXPECT_EQ(response.usage.input_tokens, 5);
  EXPECT_EQ(response.usage.output_tokens, 0);

  const auto seen = server_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/v1/embeddings");
  EXPECT_EQ(seen[0].body, (json{{"model", "embed-test"}, {"input", {"first", "second text"}}}));
}

TEST_F(OpenAIProviderTest, RateLimitedThenSuccessWaitsRetryAfter) {
  server_.Play([](int n, const httplib::Request&, httplib::Response& response) {
    if (n == 0) {
      response.set_header("Retry-After", "1");
      ReplyError(response, 429, "slow down");
      return;
    }
    ReplyJson(response, ChatCompletion("after the wait"));
  });
  OpenAICompatibleProvider provider(Options());
  EXPECT_EQ(provider.Chat(Hello()).content, "after the wait");

  const auto seen = server_.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_GE(seen[1].at - seen[0].at, milliseconds(950));
  ASSERT_EQ(retries_.size(), 1u);
  EXPECT_EQ(retries_[0].failed_attempt, 1);
  EXPECT_EQ(retries_[0].kind, ProviderErrorKind::kRateLimited);
  EXPECT_EQ(retries_[0].http_status, 429);
  EXPECT_EQ(retries_[0].delay, milliseconds(1000));
  EXPECT_TRUE(retries_[0].from_retry_after);
}

TEST_F(OpenAIProviderTest, RetryAfterIsCapped) {
  server_.Play([](int n, const httplib::Request&, httplib::Response& response) {
    if (n == 0) {
      response.set_header("Retry-After", "3600");
      ReplyError(response, 429, "come back in an hour");
      return;
    }
    ReplyJson(response, ChatCompletion("ok"));
  });
  auto options = Options();
  options.retry_max_delay = milliseconds(50);
  OpenAICompatibleProvider provider(options);
  const auto started = Clock::now();
  EXPECT_EQ(provider.Chat(Hello()).content, "ok");
  EXPECT_LT(Clock::now() - started, milliseconds(1000));
  ASSERT_EQ(retries_.size(), 1u);
  EXPECT_EQ(retries_[0].delay, milliseconds(50));
}

TEST_F(OpenAIProviderTest, ServerErrorThenSuccess) {
  server_.Play([](int n, const httplib::Request&, httplib::Response& response) {
    if (n == 0) {
      ReplyError(response, 500, "boom");
      return;
    }
    ReplyJson(response, ChatCompletion("recovered"));
  });
  OpenAICompatibleProvider provider(Options());
  EXPECT_EQ(provider.Chat(Hello()).content, "recovered");
  EXPECT_EQ(server_.seen().size(), 2u);
  ASSERT_EQ(retries_.size(), 1u);
  EXPECT_EQ(retries_[0].kind, ProviderErrorKind::kServerError);
  EXPECT_FALSE(retries_[0].from_retry_after);
}

TEST_F(OpenAIProviderTest, PersistentRateLimitGivesUpAfterMaxRetries) {
  server_.Play([](int, const httplib::Request&, httplib::Response& response) {
    response.set_header("retry-after-ms", "20");
    ReplyError(response, 429, "still busy");
  });
  OpenAICompatibleProvider provider(Options());
  const ProviderError error = Failure([&] { (void)provider.Chat(Hello()); });
  EXPECT_EQ(error.kind(), ProviderErrorKind::kRateLimited);
  EXPECT_TRUE(error.retryable());
  EXPECT_EQ(error.http_status(), 429);
  EXPECT_EQ(error.attempts(), 3);
  EXPECT_EQ(server_.seen().size(), 3u);
  ASSERT_EQ(retries_.size(), 2u);
  EXPECT_EQ(retries_[1].delay, milliseconds(20));
  EXPECT_NE(std::string(error.what()).find("still busy"), std::string::npos) << error.what();
}

TEST_F(OpenAIProviderTest, MalformedBodiesAreBadResponsesAndNotRetried) {
  const std::vector<std::pair<const char*, std::string>> bodies = {
      {"not json", "{\"choices\": [ this is not json"},
      {"json array", "[1,2,3]"},
      {"no choices", R"({"id":"x"})"},
      {"empty choices", R"({"choices":[]})"},
      {"no message", R"({"choices":[{"finish_reason":"stop"}]})"},
      {"content not a string", R"({"choices":[{"message":{"content":42}}]})"},
      {"negative usage", R"({"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":-1}})"},
  };
  for (const auto& [name, body] : bodies) {
    FakeOpenAI server;
    server.Play([&body](int, const httplib::Request&, httplib::Response& response) {
      response.set_content(body, "application/json");
    });
    auto options = Options();
    options.base_url = server.base_url();
    OpenAICompatibleProvider provider(options);
    const ProviderError error = Failure([&] { (void)provider.Chat(Hello()); });
    EXPECT_EQ(error.kind(), ProviderErrorKind::kBadResponse) << name << ": " << error.what();
    EXPECT_FALSE(error.retryable()) << name;
    EXPECT_EQ(error.attempts(), 1) << name;
    EXPECT_EQ(server.seen().size(), 1u) << name;
  }
  EXPECT_TRUE(retries_.empty());
}

TEST_F(OpenAIProviderTest, EmbeddingCountMismatchIsBadResponse) {
  server_.Play([](int, const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, {{"data", {{{"index", 0}, {"embedding", {1.0}}}}}});
  });
  OpenAICompatibleProvider provider(Options());
  EmbedRequest request;
  request.model = "embed-test";
  request.inputs = {"a", "b"};
  EXPECT_EQ(Failure([&] { (void)provider.Embed(request); }).kind(),
            ProviderErrorKind::kBadResponse);
}

TEST_F(OpenAIProviderTest, UnauthorizedIsAClientErrorWithoutTheKey) {
  server_.Play([](int, const httplib::Request&, httplib::Response& response) {
    // Servers echo (parts of) the key back; none of it may reach our error text.
    ReplyError(response, 401, std::string("Incorrect API key provided: ") + kApiKey + ".");
  });
  OpenAICompatibleProvider provider(Options());
  const ProviderError error = Failure([&] { (void)provider.Chat(Hello()); });
  EXPECT_EQ(error.kind(), ProviderErrorKind::kClientError);
  EXPECT_FALSE(error.retryable());
  EXPECT_EQ(error.http_status(), 401);
  EXPECT_EQ(server_.seen().size(), 1u);
  const std::string what = error.what();
  EXPECT_EQ(what.find("0123456789abcdef"), std::string::npos) << what;
  EXPECT_NE(what.find("Incorrect API key provided"), std::string::npos) << what;
}

TEST_F(OpenAIProviderTest, ReadTimeout) {
  server_.Play([this](int, const httplib::Request&, httplib::Response& response) {
    server_.Hold(milliseconds(5000));
    ReplyJson(response, ChatCompletion("too late"));
  });
  auto options = Options();
  options.read_timeout = milliseconds(200);
  options.max_retries = 0;
  OpenAICompatibleProvider provider(options);
  const auto started = Clock::now();
  const ProviderError error = Failure([&] { (void)provider.Chat(Hello()); });
  EXPECT_EQ(error.kind(), ProviderErrorKind::kTimeout) << error.what();
  EXPECT_TRUE(error.retryable());
  EXPECT_LT(Clock::now() - started, milliseconds(2000));
}

TEST_F(OpenAIProviderTest, DeadlineBoundsTheCall) {
  server_.Play([this](int, const httplib::Request&, httplib::Response& response) {
    server_.Hold(milliseconds(5000));
    ReplyJson(response, ChatCompletion("too late"));
  });
  OpenAICompatibleProvider provider(Options());  // read timeout 3 s, retries allowed
  ChatRequest request = Hello();
  request.control.deadline = Clock::now() + milliseconds(250);
  const auto started = Clock::now();
  const ProviderError error = Failure([&] { (void)provider.Chat(request); });
  EXPECT_EQ(error.kind(), ProviderErrorKind::kTimeout) << error.what();
  EXPECT_LT(Clock::now() - started, milliseconds(1500));
}

TEST_F(OpenAIProviderTest, StopTokenCancelsAnInFlightRequest) {
  server_.Play([this](int, const httplib::Request&, httplib::Response& response) {
    server_.Hold(milliseconds(5000));
    ReplyJson(response, ChatCompletion("too late"));
  });
  OpenAICompatibleProvider provider(Options());
  std::stop_source stop;
  ChatRequest request = Hello();
  request.control.stop = stop.get_token();
  std::jthread canceller([&stop] {
    std::this_thread::sleep_for(milliseconds(200));
    stop.request_stop();
  });
  const auto started = Clock::now();
  const ProviderError error = Failure([&] { (void)provider.Chat(request); });
  EXPECT_EQ(error.kind(), ProviderErrorKind::kCancelled) << error.what();
  EXPECT_FALSE(error.retryable());
  EXPECT_LT(Clock::now() - started, milliseconds(1500));
}

TEST_F(OpenAIProviderTest, StopTokenCancelsARetryWait) {
  server_.Play([](int, const httplib::Request&, httplib::Response& response) {
    response.set_header("Retry-After", "30");
    ReplyError(response, 429, "later");
  });
  auto options = Options();
  options.retry_max_delay = milliseconds(30000);
  OpenAICompatibleProvider provider(options);
  std::stop_source stop;
  ChatRequest request = Hello();
  request.control.stop = stop.get_token();
  std::jthread canceller([&stop] {
    std::this_thread::sleep_for(milliseconds(200));
    stop.request_stop();
  });
  const auto started = Clock::now();
  const ProviderError error = Failure([&] { (void)provider.Chat(request); });
  EXPECT_EQ(error.kind(), ProviderErrorKind::kCancelled) << error.what();
  EXPECT_LT(Clock::now() - started, milliseconds(1500));
  EXPECT_EQ(server_.seen().size(), 1u);
}

TEST_F(OpenAIProviderTest, RetryThatCannotFinishBeforeTheDeadlineGivesUpAtOnce) {
  server_.Play([](int, const httplib::Request&, httplib::Response& response) {
    response.set_header("Retry-After", "10");
    ReplyError(response, 503, "overloaded");
  });
  auto options = Options();
  options.retry_max_delay = milliseconds(30000);
  OpenAICompatibleProvider provider(options);
  ChatRequest request = Hello();
  request.control.deadline = Clock::now() + milliseconds(2000);
  const auto started = Clock::now();
  const ProviderError error = Failure([&] { (void)provider.Chat(request); });
  EXPECT_EQ(error.kind(), ProviderErrorKind::kServerError) << error.what();
  EXPECT_EQ(error.http_status(), 503);
  EXPECT_LT(Clock::now() - started, milliseconds(1000));
}

TEST_F(OpenAIProviderTest, RefusedConnectionIsUnreachable) {
  std::string dead_url;
  {
    FakeOpenAI closed;  // bind a free port, then let it go
    dead_url = closed.base_url();
  }
  auto options = Options();
  options.base_url = dead_url;
  options.max_retries = 1;
  OpenAICompatibleProvider provider(options);
  const ProviderError error = Failure([&] { (void)provider.Chat(Hello()); });
  EXPECT_EQ(error.kind(), ProviderErrorKind::kUnreachable) << error.what();
  EXPECT_TRUE(error.retryable());
  EXPECT_EQ(error.attempts(), 2);
  EXPECT_EQ(retries_.size(), 1u);
}

TEST(OpenAIProviderOptionsTest, BaseUrlIsValidated) {
  auto make = [](std::string url) {
    OpenAIProviderOptions options;
    options.base_url = std::move(url);
    return OpenAICompatibleProvider(std::move(options));
  };
  EXPECT_NO_THROW(make("http://127.0.0.1:11434/v1"));
  EXPECT_NO_THROW(make("https://api.openai.com/v1/"));
  EXPECT_NO_THROW(make("http://localhost:8080"));
  EXPECT_THROW(make("ftp://host/v1"), std::invalid_argument);
  EXPECT_THROW(make("api.openai.com/v1"), std::invalid_argument);
  EXPECT_THROW(make("http:///v1"), std::invalid_argument);
  EXPECT_THROW(make("https://user:secret@host/v1"), std::invalid_argument);
  try {
    make("https://user:hunter2@host/v1");
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos);
  }
  OpenAIProviderOptions options;
  OpenAICompatibleProvider provider(options);
  ChatRequest no_model;
  EXPECT_THROW((void)provider.Chat(no_model), ProviderError);
}

}  // namespace
}  // namespace cogo::providers
