// EdgeServer: the public HTTP ingress (the seeds' `orchestrator-chat`) as a daemon Component.
// POST /functions/v1/orchestrator-chat authenticates (apikey + HS256 JWT), bounds and validates
// the body, rate-limits per tenant and enqueues one (orchestrator, decide) message -> 202 {id};
// GET .../{id} returns that request's status, result and trail, scoped to the caller's tenant;
// /healthz and /readyz. Every refusal is a 4xx `{error, message}` and writes nothing.
// Thread-safe: requests run on the server's thread pool, each with a pooled connection.
#pragma once

#include <memory>
#include <set>
#include <string>

#include <spdlog/logger.h>

#include "cogo/edge/ingress.h"
#include "cogo/edge/jwt.h"
#include "cogo/edge/rate_limit.h"
#include "cogo/runtime/daemon.h"

namespace cogo::edge {

struct EdgeOptions {
  std::string database_url;
  std::string host = "127.0.0.1";   // --listen-host / COGO_EDGE_HOST
  int port = 8780;                  // --port / COGO_EDGE_PORT; 0 = any free port
  int threads = 8;                  // HTTP worker threads
  std::string jwt_secret;           // COGO_JWT_SECRET (environment only; never logged)
  std::string publishable_key;      // COGO_PUBLISHABLE_KEY (environment only)
  IngressLimits limits;
  VerifyOptions verify;
  TokenBucketParams rate;           // per tenant
  int shards = 1;                   // decide messages go to shard hash(tenant) % shards
  int max_attempts = 5;             // of each decide message
  // When `check_intents`, an intent outside `known_intents` is refused with 422 unknown_intent
  // (set from the routing config when its classifier is off); else the brain judges intents.
  bool check_intents = false;
  std::set<std::string, std::less<>> known_intents;
};

class EdgeServer final : public runtime::Component {
 public:
  // Throws std::invalid_argument when the secret or the publishable key is empty.
  EdgeServer(EdgeOptions options, std::shared_ptr<spdlog::logger> logger);
  ~EdgeServer() override;

  void Start() override;  // binds (throws when the port is taken) and serves
  void Drain() override;  // stops accepting, finishes running requests
  [[nodiscard]] int port() const;  // the bound port once started

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cogo::edge
