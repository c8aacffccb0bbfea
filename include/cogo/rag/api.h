// The retrieval REST route, mounted on the brain's JSON service (the graph's is kg/api.h):
//   POST /api/rag/query {tenant?, query, k?}   -> 200 {"results": [{doc_id, chunk_id, title, text,
//        score}], "search", "model"}: published on (rag, query) and answered by a
//        cogo-rag-dispatcher within `timeout` (else 504 retrieval_timeout, the message cancelled)
// Tenant tokens act for and see their own tenant only; a service_role token names the tenant.
// Thread-safe: the route shares nothing but the service's pool.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/http/json_service.h"
#include "cogo/rag/dispatcher.h"

namespace cogo::rag {

struct RagApiOptions {
  QueryOptions query;                          // the limits on query and k
  std::chrono::milliseconds timeout{10000};    // how long a query waits for a dispatcher
};

[[nodiscard]] std::vector<http::Route> RagRoutes(http::JsonService& service, RagApiOptions options,
                                                 std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::rag
