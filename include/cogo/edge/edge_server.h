// The public HTTP ingress (the seeds' `orchestrator-chat`) as routes on an http::JsonService.
// POST /functions/v1/orchestrator-chat authenticates (apikey + HS256 JWT), bounds and validates
// the body, rate-limits per tenant and enqueues one (orchestrator, decide) message -> 202 {id};
// GET .../{id} returns that request's status, result and trail, scoped to the caller's tenant.
// Every refusal is a 4xx `{error, message}` and writes nothing. Thread-safe: the routes run on
// the service's thread pool, each request with a pooled connection.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/auth/jwt.h"
#include "cogo/edge/ingress.h"
#include "cogo/edge/rate_limit.h"
#include "cogo/http/json_service.h"

namespace cogo::edge {

struct EdgeOptions {
  IngressLimits limits;
  TokenBucketParams rate;           // per tenant
  int shards = 1;                   // decide messages go to shard hash(tenant) % shards
  int max_attempts = 5;             // of each decide message
  // When `check_intents`, an intent outside `known_intents` is refused with 422 unknown_intent
  // (set from the routing config when its classifier is off); else the brain judges intents.
  bool check_intents = false;
  std::set<std::string, std::less<>> known_intents;
};

// The edge's authentication step: the `apikey` header must equal `publishable_key` (compared in
// constant time), then the bearer JWT must verify with `jwt_secret`. Throws
// std::invalid_argument when either secret is empty.
[[nodiscard]] http::Authenticator EdgeAuthenticator(std::string jwt_secret, std::string publishable_key,
                                                    auth::VerifyOptions verify = {});

// The ingress routes for `service` (which must outlive them; it needs EdgeAuthenticator).
[[nodiscard]] std::vector<http::Route> EdgeRoutes(http::JsonService& service, EdgeOptions options,
                                                  std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::edge
