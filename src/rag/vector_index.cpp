#include "cogo/rag/vector_index.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>

namespace cogo::rag {

std::vector<Hit> MergeHits(std::vector<Hit> hits, size_t k) {
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.chunk_id != b.chunk_id ? a.chunk_id < b.chunk_id : a.score > b.score;
  });
  hits.erase(std::unique(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.chunk_id == b.chunk_id; }),
             hits.end());
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.score != b.score ? a.score > b.score : a.chunk_id < b.chunk_id;
  });
  if (hits.size() > k) hits.resize(k);
  return hits;
}

// One tenant's vectors: a flat array for exact search and an HNSW graph over the same rows
// (hnswlib keeps its own copy). Removed rows stay in the array as dead slots and are marked
// deleted in the graph.
class VectorIndex::Partition {
 public:
  Partition(size_t dimension, const IndexOptions& options) : dimension_(dimension), options_(options), space_(dimension) {}

  bool Add(int64_t id, const std::vector<float>& vector) {
    if (slots_.count(id) > 0) return false;
    const size_t slot = ids_.size();
    ids_.push_back(id);
    alive_.push_back(true);
    data_.insert(data_.end(), vector.begin(), vector.end());
    slots_.emplace(id, slot);
    ++live_;
    if (!graph_) {
      graph_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(&space_, 1024, options_.hnsw_m, options_.ef_construction);
      graph_->setEf(options_.ef_search);
    } else if (graph_->cur_element_count >= graph_->max_elements_) {
      graph_->resizeIndex(graph_->max_elements_ * 2);
    }
    graph_->addPoint(vector.data(), static_cast<hnswlib::labeltype>(id));
    return true;
  }

  bool Remove(int64_t id) {
    const auto it = slots_.find(id);
    if (it == slots_.end() || !alive_[it->second]) return false;
    alive_[it->second] = false;
    --live_;
    graph_->markDelete(static_cast<hnswlib::labeltype>(id));
    return true;
  }

  [[nodiscard]] std::vector<Hit> Exact(const float* query, size_t k) const {
    // A min-heap of the best k so far.
    const auto worse = [](const Hit& a, const Hit& b) { return a.score != b.score ? a.score > b.score : a.chunk_id < b.chunk_id; };
    std::priority_queue<Hit, std::vector<Hit>, decltype(worse)> best(worse);
    for (size_t slot = 0; slot < ids_.size(); ++slot) {
      if (!alive_[slot]) continue;
      const float* row = data_.data() + slot * dimension_;
      float dot = 0;
      for (size_t d = 0; d < dimension_; ++d) dot += row[d] * query[d];
      if (best.size() < k) {
        best.push({ids_[slot], dot});
      } else if (worse({ids_[slot], dot}, best.top())) {
        best.pop();
        best.push({ids_[slot], dot});
      }
    }
    std::vector<Hit> out;
    while (!best.empty()) {
      out.push_back(best.top());
      best.pop();
    }
    return MergeHits(std::move(out), k);
  }

  [[nodiscard]] std::vector<Hit> Approximate(const float* query, size_t k) const {
    if (!graph_ || live_ == 0) return {};
    std::vector<Hit> out;
    auto found = graph_->searchKnn(query, std::min(k, live_));
    while (!found.empty()) {
      out.push_back({static_cast<int64_t>(found.top().second), 1.0F - found.top().first});
      found.pop();
    }
    return MergeHits(std::move(out), k);
  }

  [[nodiscard]] size_t live() const { return live_; }

  mutable std::shared_mutex mu;

 private:
  const size_t dimension_;
  const IndexOptions options_;
  hnswlib::InnerProductSpace space_;  // must outlive graph_ (declared before it)
  std::vector<int64_t> ids_;
  std::vector<bool> alive_;
  std::vector<float> data_;  // ids_.size() * dimension_
  std::unordered_map<int64_t, size_t> slots_;
  size_t live_ = 0;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph_;
};

class VectorIndex::Impl {
 public:
  explicit Impl(IndexOptions given) : options(given), dimension(given.dimension) {}

  Partition* Find(const std::string& tenant) const {
    std::shared_lock lock(mu);
    const auto it = partitions.find(tenant);
    return it == partitions.end() ? nullptr : it->second.get();
  }

  IndexOptions options;
  mutable std::shared_mutex mu;  // the map and the dimension; partitions have their own locks
  size_t dimension;
  std::map<std::string, std::unique_ptr<Partition>> partitions;
};

VectorIndex::VectorIndex(IndexOptions options) : impl_(std::make_unique<Impl>(options)) {}
VectorIndex::~VectorIndex() = default;

bool VectorIndex::Add(const std::string& tenant, int64_t chunk_id, const std::vector<float>& vector) {
  Partition* partition = nullptr;
  {
    std::unique_lock lock(impl_->mu);
    if (impl_->dimension == 0) impl_->dimension = vector.size();
    if (vector.empty() || vector.size() != impl_->dimension) return false;
    auto& slot = impl_->partitions[tenant];
    if (!slot) {
      slot = std::make_unique<Partition>(impl_->dimension, impl_->options);
    }
    partition = slot.get();
  }
  std::unique_lock lock(partition->mu);
  return partition->Add(chunk_id, vector);
}

bool VectorIndex::Remove(const std::string& tenant, int64_t chunk_id) {
  Partition* partition = impl_->Find(tenant);
  if (partition == nullptr) return false;
  std::unique_lock lock(partition->mu);
  return partition->Remove(chunk_id);
}

std::vector<Hit> VectorIndex::Search(const std::string& tenant, const std::vector<float>& query, size_t k,
                                     SearchMode mode) const {
  Partition* partition = impl_->Find(tenant);
  if (partition == nullptr || k == 0 || query.size() != dimension()) return {};
  if (mode == SearchMode::automatic) mode = Resolve(tenant, mode);
  std::shared_lock lock(partition->mu);
  return mode == SearchMode::exact ? partition->Exact(query.data(), k) : partition->Approximate(query.data(), k);
}

SearchMode VectorIndex::Resolve(const std::string& tenant, SearchMode mode) const {
  if (mode != SearchMode::automatic) return mode;
  return size(tenant) < impl_->options.exact_below ? SearchMode::exact : SearchMode::hnsw;
}

size_t VectorIndex::size() const {
  std::shared_lock lock(impl_->mu);
  size_t total = 0;
  for (const auto& [tenant, partition] : impl_->partitions) {
    std::shared_lock inner(partition->mu);
    total += partition->live();
  }
  return total;
}

size_t VectorIndex::size(const std::string& tenant) const {
  Partition* partition = impl_->Find(tenant);
  if (partition == nullptr) return 0;
  std::shared_lock lock(partition->mu);
  return partition->live();
}

size_t VectorIndex::dimension() const {
  std::shared_lock lock(impl_->mu);
  return impl_->dimension;
}

}  // namespace cogo::rag
