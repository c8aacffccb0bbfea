// The (kg, build) handler: `{doc_id, title?}` -> the document's chunks (written by rag/embed)
// -> entities and relations per chunk -> graph rows with provenance, in ONE transaction with the
// message's completion under its lease. The model of the assignment picks the extractor:
// kg::kOfflineModel runs the offline rules, any other model the chat extractor through the
// provider (strict reply parsing; a malformed reply is asked again, then the message fails
// `extraction_malformed`). Entities merge per tenant by (normalised name, type). A graph already
// built from the document's current content is a no-op; a rebuild replaces the document's
// provenance, so a retried message counts nothing twice. Result `{doc_id, status: built |
// unchanged, chunks, entities, relations, mentions}`.
// Failures: invalid_input, document_not_found (permanent); document_changed (retried: the
// chunks were replaced while extracting). Thread-safe: one pooled connection per call.
#pragma once

#include <memory>

#include <spdlog/logger.h>

#include "cogo/db/pool.h"
#include "cogo/policy/policy_table.h"
#include "cogo/providers/provider.h"
#include "cogo/runtime/handler.h"

namespace cogo::kg {

struct BuilderOptions {
  int reply_attempts = 2;   // chat extractor: asks per chunk before extraction_malformed
  int max_tokens = 1024;    // chat extractor: reply cap per chunk (the budget caps it further)
};

// `chat` may be null: only the offline extractor is then served (other models fail
// model_not_served).
[[nodiscard]] runtime::Handler MakeBuildHandler(std::shared_ptr<providers::ModelProvider> chat,
                                                std::shared_ptr<const policy::PolicyTable> policy,
                                                std::shared_ptr<db::ConnectionPool> pool, BuilderOptions options,
                                                std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::kg
