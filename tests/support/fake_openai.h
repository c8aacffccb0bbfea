// FakeOpenAI: a real cpp-httplib server on 127.0.0.1 that speaks the OpenAI wire format
// (/v1/chat/completions, /v1/embeddings) and plays a script per test: the test double for a
// hosted model API, which we do not control. Thread-safe: the server thread and the test share
// the recorded requests under a mutex.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace cogo::testing {

struct Seen {
  std::string path;
  std::string authorization;  // "" when absent
  std::string content_type;
  nlohmann::json body;
  std::chrono::steady_clock::time_point at;
};

// Answers the n-th request (0-based) on a path; fills the response.
using Script = std::function<void(int n, const httplib::Request&, httplib::Response&)>;

class FakeOpenAI {
 public:
  FakeOpenAI() {
    for (const char* path : {"/v1/chat/completions", "/v1/embeddings"}) {
      server_.Post(path, [this](const httplib::Request& request, httplib::Response& response) {
        Script script;
        int n;
        {
          std::lock_guard lock(mutex_);
          n = static_cast<int>(seen_.size());
          Seen seen{request.path, request.get_header_value("Authorization"),
                    request.get_header_value("Content-Type"),
                    nlohmann::json::parse(request.body, nullptr, false), std::chrono::steady_clock::now()};
          seen_.push_back(std::move(seen));
          script = script_;
        }
        if (script) script(n, request, response);
      });
    }
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  ~FakeOpenAI() {
    Release();
    server_.stop();
    thread_.join();
  }

  void Play(Script script) {
    std::lock_guard lock(mutex_);
    script_ = std::move(script);
  }

  std::vector<Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

  // For slow handlers: blocks until Release() or `limit`.
  void Hold(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    released_cv_.wait_for(lock, limit, [this] { return released_; });
  }
  void Release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
  }

  // The JSON bodies of the requests seen so far, in order.
  std::vector<nlohmann::json> bodies() {
    std::lock_guard lock(mutex_);
    std::vector<nlohmann::json> out;
    for (const Seen& s : seen_) out.push_back(s.body);
    return out;
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;
  Script script_;
  std::vector<Seen> seen_;
};

inline void ReplyJson(httplib::Response& response, const nlohmann::json& body, int status = 200) {
  response.status = status;
  response.set_content(body.dump(), "application/json");
}

// A chat completion answering `text`, with its usage.
inline nlohmann::json ChatCompletion(const std::string& text, int64_t prompt_tokens = 100,
                                     int64_t completion_tokens = 50, const std::string& model = "fake") {
  return {{"id", "chatcmpl-1"},
          {"model", model},
          {"choices", {{{"index", 0}, {"finish_reason", "stop"},
                        {"message", {{"role", "assistant"}, {"content", text}}}}}},
          {"usage", {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens},
                     {"total_tokens", prompt_tokens + completion_tokens}}}};
}

// A script answering every chat request with the completion `reply` writes for its body.
inline Script ChatReplies(std::function<std::string(const nlohmann::json& request)> reply,
                          int64_t prompt_tokens = 100, int64_t completion_tokens = 50) {
  return [reply = std::move(reply), prompt_tokens, completion_tokens](int, const httplib::Request& request,
                                                                      httplib::Response& response) {
    ReplyJson(response, ChatCompletion(reply(nlohmann::json::parse(request.body)), prompt_tokens, completion_tokens));
  };
}

}  // namespace cogo::testing
