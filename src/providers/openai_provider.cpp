#include "cogo/providers/openai_provider.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <utility>

#include "cogo/policy/backoff.h"
#include "cogo/base/sleep.h"

namespace cogo::providers {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxDetailChars = 240;

// One failed HTTP attempt, before the retry decision.
struct AttemptFailure {
  ProviderErrorKind kind;
  int http_status = 0;
  std::string message;
  std::optional<milliseconds> retry_after;
};

bool RetriedHere(ProviderErrorKind kind) {
  return kind == ProviderErrorKind::kRateLimited || kind == ProviderErrorKind::kServerError ||
         kind == ProviderErrorKind::kTimeout || kind == ProviderErrorKind::kUnreachable;
}

std::optional<double> ParseNonNegativeNumber(const std::string& text) {
  if (text.empty() || text.size() > 32) return std::nullopt;
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || !(value >= 0) || value > 1e9) return std::nullopt;
  return value;
}

// `retry-after-ms` (OpenAI's) first, then `Retry-After` in seconds. HTTP-date forms are ignored
// and fall back to our own backoff.
std::optional<milliseconds> ParseRetryAfter(const httplib::Response& response) {
  if (auto ms = ParseNonNegativeNumber(response.get_header_value("retry-after-ms"))) {
    return milliseconds(static_cast<int64_t>(*ms));
  }
  if (auto seconds = ParseNonNegativeNumber(response.get_header_value("Retry-After"))) {
    return milliseconds(static_cast<int64_t>(*seconds * 1000.0));
  }
  return std::nullopt;
}

// Server error text, made safe for logs: the exact key and anything shaped like an OpenAI key
// ("sk-...") are masked, control characters dropped, the length bounded.
std::string SafeDetail(std::string text, const std::string& api_key) {
  if (!api_key.empty()) {
    for (size_t at = text.find(api_key); at != std::string::npos; at = text.find(api_key, at)) {
      text.replace(at, api_key.size(), "[redacted]");
    }
  }
  for (size_t at = text.find("sk-"); at != std::string::npos; at = text.find("sk-", at + 1)) {
    size_t end = at + 3;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end])) &&
           text[end] != '"' && text[end] != ',' && text[end] != '.') {
      ++end;
    }
    text.replace(at, end - at, "sk-[redacted]");
  }
  std::string out;
  for (char c : text) {
    if (out.size() >= kMaxDetailChars) {
      out += "...";
      break;
    }
    out.push_back(std::iscntrl(static_cast<unsigned char>(c)) ? ' ' : c);
  }
  return out;
}

// The `error.message` (and type/code) of an OpenAI-style error body, else the raw text.
std::string ErrorBodyDetail(const std::string& body, const std::string& api_key) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object() && doc.contains("error")) {
    const json& error = doc["error"];
    if (error.is_string()) return SafeDetail(error.get<std::string>(), api_key);
    if (error.is_object()) {
      std::string detail;
      for (const char* field : {"type", "code"}) {
        if (error.contains(field) && error[field].is_string()) {
          detail += error[field].get<std::string>() + ": ";
        }
      }
      if (error.contains("message") && error["message"].is_string()) {
        detail += error["message"].get<std::string>();
      }
      if (!detail.empty()) return SafeDetail(detail, api_key);
    }
  }
  return SafeDetail(body, api_key);
}

ProviderErrorKind KindForStatus(int status) {
  if (status == 429) return ProviderErrorKind::kRateLimited;
  if (status == 408) return ProviderErrorKind::kTimeout;
  if (status >= 500) return ProviderErrorKind::kServerError;
  if (status >= 400) return ProviderErrorKind::kClientError;
  return ProviderErrorKind::kBadResponse;  // 1xx/3xx: we asked for neither
}

double JitterSample() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

milliseconds Remaining(const std::optional<Deadline>& deadline) {
  if (!deadline) return milliseconds::max();
  return std::chrono::duration_cast<milliseconds>(*deadline - Clock::now());
}

ProviderError BadResponse(const std::string& what, int attempts) {
  return ProviderError(ProviderErrorKind::kBadResponse, what, 200, attempts);
}

int64_t TokenCount(const json& usage, const char* field) {
  if (!usage.contains(field) || usage[field].is_null()) return 0;
  const json& value = usage[field];
  if (!value.is_number_integer() || value.get<int64_t>() < 0) {
    throw std::invalid_argument(std::string("usage.") + field + " is not a token count");
  }
  return value.get<int64_t>();
}

json ParseObject(const std::string& body, int attempts) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw BadResponse("response body is not valid JSON", attempts);
  if (!doc.is_object()) throw BadResponse("response body is not a JSON object", attempts);
  return doc;
}

}  // namespace

OpenAICompatibleProvider::OpenAICompatibleProvider(OpenAIProviderOptions options)
    : options_(std::move(options)) {
  // The URL is not echoed in errors: it could carry credentials.
  const std::string& url = options_.base_url;
  const size_t scheme_end = url.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw std::invalid_argument("base_url must start with http:// or https://");
  }
  const size_t authority_begin = scheme_end + 3;
  const size_t path_begin = std::min(url.find('/', authority_begin), url.size());
  const std::string authority = url.substr(authority_begin, path_begin - authority_begin);
  if (authority.empty() || authority.find('@') != std::string::npos ||
      authority.find_first_of("?# ") != std::string::npos) {
    throw std::invalid_argument("base_url must be scheme://host[:port][/prefix] without userinfo");
  }
  scheme_host_port_ = scheme + "://" + authority;
  path_prefix_ = url.substr(path_begin);
  while (!path_prefix_.empty() && path_prefix_.back() == '/') path_prefix_.pop_back();
  if (path_prefix_.find_first_of("?# ") != std::string::npos) {
    throw std::invalid_argument("base_url path prefix must not carry a query or fragment");
  }
  if (options_.max_retries < 0) throw std::invalid_argument("max_retries must be >= 0");
  if (options_.connect_timeout <= milliseconds(0) || options_.read_timeout <= milliseconds(0)) {
    throw std::invalid_argument("timeouts must be positive");
  }
}

std::string OpenAICompatibleProvider::PostWithRetries(const std::string& path,
                                                      const std::string& body,
                                                      const CallControl& control,
                                                      int* attempts_out) const {
  const std::string full_path = path_prefix_ + path;
  const int max_attempts = 1 + options_.max_retries;
  const policy::BackoffParams backoff{options_.retry_base_delay, options_.retry_max_delay, 2.0,
                                      0.2};
  httplib::Headers headers{{"Accept", "application/json"}};
  if (!options_.api_key.empty()) {
    headers.emplace("Authorization", "Bearer " + options_.api_key);
  }

  for (int attempt = 1;; ++attempt) {
    *attempts_out = attempt - 1;
    if (control.stop.stop_requested()) {
      throw ProviderError(ProviderErrorKind::kCancelled, "POST " + full_path + ": cancelled", 0,
                          attempt - 1);
    }
    const milliseconds remaining = Remaining(control.deadline);
    if (remaining <= milliseconds(0)) {
      throw ProviderError(ProviderErrorKind::kTimeout, "POST " + full_path + ": deadline passed",
                          0, attempt - 1);
    }
    *attempts_out = attempt;

    // One attempt on its own connection, its timeouts clamped to the call's deadline.
    const milliseconds read_timeout = std::min(options_.read_timeout, remaining);
    httplib::Client client(scheme_host_port_);
    client.set_connection_timeout(std::min(options_.connect_timeout, remaining));
    client.set_read_timeout(read_timeout);
    client.set_write_timeout(read_timeout);
    if (!options_.ca_cert_path.empty()) client.set_ca_cert_path(options_.ca_cert_path.c_str());
    client.enable_server_certificate_verification(true);

    const auto started = Clock::now();
    std::optional<httplib::Result> result;
    {
      // stop() shuts the in-flight socket down from the requesting thread's stop source.
      std::stop_callback on_stop(control.stop, [&client] { client.stop(); });
      if (!control.stop.stop_requested()) {
        result.emplace(client.Post(full_path, headers, body, "application/json"));
      }
    }
    const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);

    AttemptFailure failure{ProviderErrorKind::kUnreachable, 0, "", std::nullopt};
    if (control.stop.stop_requested()) {
      throw ProviderError(ProviderErrorKind::kCancelled, "POST " + full_path + ": cancelled", 0,
                          attempt);
    }
    if (!result) {
      throw ProviderError(ProviderErrorKind::kCancelled, "POST " + full_path + ": cancelled", 0,
                          attempt);
    }
    if (!*result) {
      const httplib::Error error = result->error();
      const bool out_of_time = Remaining(control.deadline) <= milliseconds(0);
      if (out_of_time) {
        failure = {ProviderErrorKind::kTimeout, 0, "deadline passed during the request", {}};
      } else if (error == httplib::Error::ConnectionTimeout) {
        failure = {ProviderErrorKind::kTimeout, 0, "connect timeout", {}};
      } else if ((error == httplib::Error::Read || error == httplib::Error::Write) &&
                 elapsed + milliseconds(50) >= read_timeout) {
        failure = {ProviderErrorKind::kTimeout, 0,
                   "no answer within " + std::to_string(read_timeout.count()) + " ms", {}};
      } else {
        failure = {ProviderErrorKind::kUnreachable, 0, "transport error: " + httplib::to_string(error),
                   {}};
      }
    } else if (const httplib::Response& answer = result->value();
               answer.status >= 200 && answer.status < 300) {
      return answer.body;
    } else {
      failure = {KindForStatus(answer.status), answer.status,
                 "HTTP " + std::to_string(answer.status) + ": " +
                     ErrorBodyDetail(answer.body, options_.api_key),
                 ParseRetryAfter(answer)};
    }

    const std::string message = "POST " + full_path + ": " + failure.message;
    if (!RetriedHere(failure.kind) || attempt >= max_attempts) {
      throw ProviderError(failure.kind, message, failure.http_status, attempt);
    }
    const bool from_retry_after = failure.retry_after.has_value();
    const milliseconds delay =
        from_retry_after ? std::min(*failure.retry_after, options_.retry_max_delay)
                         : policy::NextBackoff(attempt, backoff, JitterSample());
    if (const milliseconds left = Remaining(control.deadline); delay >= left) {
      throw ProviderError(
          failure.kind,
          left > milliseconds(0) ? message + " (no time left to retry before the deadline)" : message,
          failure.http_status, attempt);
    }
    if (options_.on_retry) {
      options_.on_retry(RetryNotice{attempt, failure.kind, failure.http_status, delay,
                                    from_retry_after});
    }
    if (!base::SleepFor(control.stop, delay)) {
      throw ProviderError(ProviderErrorKind::kCancelled,
                          "POST " + full_path + ": cancelled while waiting to retry", 0, attempt);
    }
  }
}

ChatResponse OpenAICompatibleProvider::Chat(const ChatRequest& request) {
  if (request.model.empty()) {
    throw ProviderError(ProviderErrorKind::kClientError, "chat request has no model", 0, 0);
  }
  json messages = json::array();
  for (const auto& message : request.messages) {
    messages.push_back({{"role", message.role}, {"content", message.content}});
  }
  json body = {{"model", request.model}, {"messages", std::move(messages)}, {"stream", false}};
  if (request.max_tokens) body["max_tokens"] = *request.max_tokens;
  if (request.temperature) body["temperature"] = *request.temperature;

  int attempts = 0;
  const std::string text = PostWithRetries("/chat/completions", body.dump(), request.control,
                                           &attempts);
  const json doc = ParseObject(text, attempts);
  ChatResponse response;
  try {
    const json& choices = doc.at("choices");
    if (!choices.is_array() || choices.empty()) {
      throw BadResponse("response has no choices", attempts);
    }
    const json& message = choices[0].at("message");
    const json& content = message.at("content");
    if (!content.is_null()) response.content = content.get<std::string>();
    if (choices[0].contains("finish_reason") && !choices[0]["finish_reason"].is_null()) {
      response.finish_reason = choices[0]["finish_reason"].get<std::string>();
    }
    if (doc.contains("usage") && doc["usage"].is_object()) {
      response.usage.input_tokens = TokenCount(doc["usage"], "prompt_tokens");
      response.usage.output_tokens = TokenCount(doc["usage"], "completion_tokens");
    } else {
      response.usage_reported = false;
    }
    response.model = doc.contains("model") && doc["model"].is_string()
                         ? doc["model"].get<std::string>()
                         : request.model;
  } catch (const json::exception& e) {
    throw BadResponse(std::string("chat response does not match the wire format: ") + e.what(),
                      attempts);
  } catch (const std::invalid_argument& e) {
    throw BadResponse(e.what(), attempts);
  }
  if (options_.pricer) {
    response.usage.cost_usd = options_.pricer(request.model, response.usage.input_tokens,
                                              response.usage.output_tokens);
  }
  return response;
}

EmbedResponse OpenAICompatibleProvider::Embed(const EmbedRequest& request) {
  if (request.model.empty()) {
    throw ProviderError(ProviderErrorKind::kClientError, "embed request has no model", 0, 0);
  }
  EmbedResponse response;
  response.model = request.model;
  if (request.inputs.empty()) return response;
  const json body = {{"model", request.model}, {"input", request.inputs}};

  int attempts = 0;
  const std::string text = PostWithRetries("/embeddings", body.dump(), request.control, &attempts);
  const json doc = ParseObject(text, attempts);
  try {
    const json& data = doc.at("data");
    if (!data.is_array() || data.size() != request.inputs.size()) {
      throw BadResponse("response has " + std::to_string(data.is_array() ? data.size() : 0) +
                            " embeddings for " + std::to_string(request.inputs.size()) +
                            " inputs",
                        attempts);
    }
    response.vectors.resize(data.size());
    std::vector<bool> seen(data.size(), false);
    for (size_t i = 0; i < data.size(); ++i) {
      // Servers may answer out of order; `index` says which input each vector belongs to.
      const size_t index = data[i].contains("index") ? data[i]["index"].get<size_t>() : i;
      if (index >= data.size() || seen[index]) {
        throw BadResponse("embedding indexes are not a permutation of the inputs", attempts);
      }
      seen[index] = true;
      const json& embedding = data[i].at("embedding");
      if (!embedding.is_array() || embedding.empty()) {
        throw BadResponse("embedding is not a non-empty array of numbers", attempts);
      }
      auto& vector = response.vectors[index];
      vector.reserve(embedding.size());
      for (const json& value : embedding) {
        if (!value.is_number()) throw BadResponse("embedding holds a non-number", attempts);
        vector.push_back(value.get<float>());
      }
    }
    if (doc.contains("usage") && doc["usage"].is_object()) {
      response.usage.input_tokens = TokenCount(doc["usage"], "prompt_tokens");
    } else {
      response.usage_reported = false;
    }
    if (doc.contains("model") && doc["model"].is_string()) {
      response.model = doc["model"].get<std::string>();
    }
  } catch (const json::exception& e) {
    throw BadResponse(std::string("embeddings response does not match the wire format: ") +
                          e.what(),
                      attempts);
  } catch (const std::invalid_argument& e) {
    throw BadResponse(e.what(), attempts);
  }
  if (options_.pricer) {
    response.usage.cost_usd = options_.pricer(request.model, response.usage.input_tokens, 0);
  }
  return response;
}

}  // namespace cogo::providers
