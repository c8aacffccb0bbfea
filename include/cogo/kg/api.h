// The knowledge graph's REST route, mounted on the brain's JSON service beside rag/api.h's:
//   GET  /api/kg/entities?tenant=&name=&limit=  -> {"entities": [{id, name, type, mentions,
//        relations: [{type, direction, entity: {name, type}, weight}], provenance: [{chunk_id,
//        doc_id, text}]}]}: exact normalised-name matches first, then names containing it
// Tenant tokens see their own tenant only; a service_role token names the tenant. Thread-safe:
// the route shares nothing but the service's pool.
#pragma once

#include <vector>

#include "cogo/http/json_service.h"

namespace cogo::kg {

[[nodiscard]] std::vector<http::Route> KgRoutes(http::JsonService& service);

}  // namespace cogo::kg
