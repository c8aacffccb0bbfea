// The (rag, embed) handler: a document `{doc_id, title, text, source?, metadata?}` is split into
// chunks, embedded in batches with the assignment's model, and stored (document row, chunks,
// vectors) in ONE transaction with the message's completion and its usage record, under the
// message's lease: a worker killed at any point leaves no partial document, and the retry writes
// it once. The same content again (rag::ContentHash) is a no-op; changed content replaces the
// document's chunks in that one transaction. Result `{doc_id, document_id, status: indexed |
// replaced | unchanged, chunks, model, dimension, content_sha256, usage}`.
// Failures: invalid_input, empty_text, document_too_large, invalid_utf8 (permanent, nothing
// written); provider errors retried when the provider says they may pass.
// Thread-safe: the handler runs on many worker threads (a pooled connection each).
#pragma once

#include <memory>

#include <spdlog/logger.h>

#include "cogo/db/pool.h"
#include "cogo/policy/policy_table.h"
#include "cogo/providers/provider.h"
#include "cogo/rag/chunker.h"
#include "cogo/rag/document.h"
#include "cogo/runtime/handler.h"

namespace cogo::rag {

struct EmbedWorkerOptions {
  ChunkOptions chunking;
  size_t max_text_bytes = kDefaultMaxTextBytes;
  size_t batch_size = 64;       // texts per provider call
  size_t dimension_hint = 0;    // the offline embedder's width (part of the content hash); 0: remote
};

[[nodiscard]] runtime::Handler MakeEmbedHandler(std::shared_ptr<providers::ModelProvider> provider,
                                                std::shared_ptr<const policy::PolicyTable> policy,
                                                std::shared_ptr<db::ConnectionPool> pool,
                                                EmbedWorkerOptions options,
                                                std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::rag
