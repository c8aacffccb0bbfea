// Retrieval for (rag, query): a ChunkIndex that mirrors rag_chunks of one embedding model into a
// VectorIndex and follows the table, and the handler that embeds a query and answers with the
// tenant's top-k chunks.
//
// Following the table: CatchUp() reads chunk rows and deletions after a cursor (tx_id, id) and
// moves the cursor only past rows below the snapshot horizon (sql/013_rag.sql says why that
// misses nothing); rows above it that are already visible are added too and read again next
// time (the index skips ids it has). The follower component catches up every interval, and the
// handler catches up before every query, so a query sees every chunk committed before it
// started: several dispatcher processes each answer correctly on their own.
// Thread-safety: ChunkIndex is; CatchUp calls are serialised inside.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <pqxx/connection>
#include <spdlog/logger.h>

#include "cogo/config/json_reader.h"
#include "cogo/db/pool.h"
#include "cogo/policy/policy_table.h"
#include "cogo/providers/provider.h"
#include "cogo/rag/vector_index.h"
#include "cogo/runtime/daemon.h"
#include "cogo/runtime/handler.h"

namespace cogo::rag {

struct CatchUpCounts {
  size_t added = 0;
  size_t removed = 0;
};

class ChunkIndex {
 public:
  // Mirrors chunks whose model is `model`.
  ChunkIndex(std::string model, IndexOptions options, size_t batch = 5000);

  // Reads what changed since the last call (all of it the first time) on `conn`.
  CatchUpCounts CatchUp(pqxx::connection& conn);

  [[nodiscard]] VectorIndex& index() { return index_; }
  [[nodiscard]] const std::string& model() const { return model_; }

 private:
  const std::string model_;
  const size_t batch_;
  VectorIndex index_;
  std::mutex mu_;  // one catch-up at a time; guards the cursors
  std::string chunk_tx_ = "0", deletion_tx_ = "0";
  int64_t chunk_id_ = 0, deletion_id_ = 0;
};

struct QueryOptions {
  int max_k = 50;                  // k in [1, max_k]
  int default_k = 5;
  size_t max_query_bytes = 4096;
  SearchMode mode = SearchMode::automatic;
};

struct QueryInput {
  std::string query;
  int k = 5;
};

// Reads `query` (1..max_query_bytes of UTF-8) and `k` (optional, 1..max_k) from `o`, taking
// only those keys (the caller reads its own, then calls o.Finish()). Throws config::JsonError
// (out_of_range for k, invalid_value for a query that is not UTF-8 or only whitespace).
[[nodiscard]] QueryInput ReadQuery(const config::JsonObject& o, const QueryOptions& options);

// Payload `{query, k?}` (or, handed on by the executor for an edge intent, `{intent, input:
// {query, k?}}`): result `{"results": [{doc_id, chunk_id, title, text, score}], "search":
// "exact" | "hnsw"}` of the message's tenant. Failures: invalid_input (a missing, empty, oversize
// or non-UTF-8 query, k out of range), model_not_served (an assignment naming another model
// than the index's). The query's embedding is metered against the assignment when there is one.
[[nodiscard]] runtime::Handler MakeQueryHandler(std::shared_ptr<providers::ModelProvider> provider,
                                                std::shared_ptr<const policy::PolicyTable> policy,
                                                std::shared_ptr<ChunkIndex> index,
                                                std::shared_ptr<db::ConnectionPool> pool, QueryOptions options,
                                                std::shared_ptr<spdlog::logger> logger);

// Catches `index` up every `interval` on its own connection (loading everything at Start), and
// prunes deletion records older than a day once an hour.
[[nodiscard]] std::unique_ptr<runtime::Component> MakeIndexFollower(std::shared_ptr<ChunkIndex> index,
                                                                    const std::string& database_url,
                                                                    std::chrono::milliseconds interval,
                                                                    std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::rag
