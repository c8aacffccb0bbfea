#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cogo/base/digest.h"
#include "cogo/workflow/engine.h"

namespace cogo::workflow {

std::string SignBody(const std::string& secret, const std::string& body) {
  return base::HmacSha256Hex(secret, body);
}

runtime::Handler MakeNotifyHandler(NotifyOptions options, std::shared_ptr<spdlog::logger> logger) {
  return [options, logger](runtime::HandlerContext& ctx) {
    using runtime::HandlerResult;
    const auto payload = nlohmann::json::parse(ctx.message.payload_json, nullptr, false);
    if (!payload.is_object() || !payload.contains("url") || !payload["url"].is_string()) {
      return HandlerResult::Fail("invalid_notify", "the payload needs a url");
    }
    const auto url = payload["url"].get<std::string>();
    const size_t scheme_end = url.find("://");
    if (url.rfind("http://", 0) != 0) return HandlerResult::Fail("invalid_notify", "the url must be http://");
    const size_t path_begin = std::min(url.find('/', scheme_end + 3), url.size());
    const std::string origin = url.substr(0, path_begin);
    const std::string path = path_begin < url.size() ? url.substr(path_begin) : "/";
    const std::string body = payload.contains("body") ? payload["body"].dump() : "{}";

    httplib::Client client(origin);
    const auto timeout = std::chrono::milliseconds(options.timeout_ms);
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    client.set_write_timeout(timeout);
    httplib::Headers headers{{"X-Cogo-Message", std::to_string(ctx.message.lease.message_id)},
                             {"X-Cogo-Correlation", ctx.message.correlation_id}};
    if (!options.secret.empty()) headers.emplace("X-Cogo-Signature", "sha256=" + SignBody(options.secret, body));
    const auto result = client.Post(path, headers, body, "application/json");
    // The URL is not logged: it may carry a token in its path or query.
    if (!result) {
      return HandlerResult::Retry("notify_unreachable", httplib::to_string(result.error()));
    }
    const int status = result->status;
    if (status >= 200 && status < 300) {
      HandlerResult done = HandlerResult::Complete(nlohmann::json{{"status", status}}.dump(),
                                                   "delivered (" + std::to_string(status) + ")");
      done.events.push_back({0, "notify_sent", nlohmann::json{{"status", status}}.dump()});
      return done;
    }
    if (status == 408 || status == 429 || status >= 500) {
      return HandlerResult::Retry("notify_status_" + std::to_string(status));
    }
    logger->warn("notify message {}: the receiver refused it with {}", ctx.message.lease.message_id, status);
    return HandlerResult::Fail("notify_refused", "HTTP " + std::to_string(status));
  };
}

}  // namespace cogo::workflow
