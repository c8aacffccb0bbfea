// VectorIndex: the chunk vectors of one embedding model, in memory, one partition per tenant
// (a search never sees another tenant's vectors), searched exactly (brute-force dot products:
// the reference) or approximately through an HNSW graph (hnswlib, only in vector_index.cpp).
// Vectors are unit length, so the score is the cosine. Removed vectors leave both searches at
// once. Thread-safe: adds and removes take a tenant's partition exclusively, searches share it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cogo::rag {

struct Hit {
  int64_t chunk_id = 0;
  float score = 0;  // cosine similarity, higher is nearer
};

// Pure: `hits` with each chunk once (its best score), best first, ties by chunk id, at most k.
[[nodiscard]] std::vector<Hit> MergeHits(std::vector<Hit> hits, size_t k);

enum class SearchMode {
  automatic,  // exact for partitions smaller than exact_below, else HNSW
  exact,
  hnsw,
};

struct IndexOptions {
  size_t dimension = 0;         // 0: the first vector added decides
  size_t hnsw_m = 16;           // graph degree (hnswlib's M)
  size_t ef_construction = 200;  // candidate list while inserting
  size_t ef_search = 64;        // candidate list while searching (raised to k when smaller)
  size_t exact_below = 2000;    // partitions this small are searched exactly in automatic mode:
                                // ~1.4 ms for 2,000 vectors of 384 (docs/benchmarks.md), and exact
};

class VectorIndex {
 public:
  explicit VectorIndex(IndexOptions options);
  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  // False (nothing added) for a chunk already present or a vector of another dimension.
  bool Add(const std::string& tenant, int64_t chunk_id, const std::vector<float>& vector);
  // False when the chunk was not present.
  bool Remove(const std::string& tenant, int64_t chunk_id);

  // The k nearest live vectors of the tenant's partition, best first (MergeHits order).
  [[nodiscard]] std::vector<Hit> Search(const std::string& tenant, const std::vector<float>& query, size_t k,
                                        SearchMode mode = SearchMode::automatic) const;

  // What `mode` means for the tenant's partition now: exact or hnsw.
  [[nodiscard]] SearchMode Resolve(const std::string& tenant, SearchMode mode) const;

  [[nodiscard]] size_t size() const;                           // live vectors, every tenant
  [[nodiscard]] size_t size(const std::string& tenant) const;  // live vectors of one tenant
  [[nodiscard]] size_t dimension() const;                      // 0 before the first vector

 private:
  class Partition;
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cogo::rag
