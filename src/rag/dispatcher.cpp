#include "cogo/rag/dispatcher.h"

#include <nlohmann/json.hpp>
#include <pqxx/binarystring>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include <map>

#include "cogo/db/connection.h"
#include "cogo/policy/metering.h"
#include "cogo/rag/chunker.h"
#include "cogo/rag/embedder.h"
#include "cogo/runtime/model_handler.h"
#include "cogo/runtime/periodic.h"
#include "rag/statements.h"
#include "rag/vector_bytes.h"

namespace cogo::rag {
namespace {

using nlohmann::json;
using runtime::HandlerResult;

}  // namespace

ChunkIndex::ChunkIndex(std::string model, IndexOptions options, size_t batch)
    : model_(std::move(model)), batch_(batch), index_(options) {}

CatchUpCounts ChunkIndex::CatchUp(pqxx::connection& conn) {
  std::lock_guard lock(mu_);
  CatchUpCounts counts;
  std::vector<float> vector;
  // Chunks first, then deletions, each statement seeing at least what the one before saw: a
  // chunk deleted after we read it is then removed in this same round.
  pqxx::read_transaction txn(conn);
  for (bool more = true; more;) {
    const auto rows = txn.exec_params(sql::kChunksAfter, chunk_tx_, chunk_id_, static_cast<int64_t>(batch_));
    more = rows.size() == batch_;
    bool settled_prefix = true;
    for (const auto& row : rows) {
      const bool settled = row[6].as<bool>();
      if (settled && settled_prefix) {
        chunk_tx_ = row[5].as<std::string>();
        chunk_id_ = row[0].as<int64_t>();
      } else {
        settled_prefix = false;
        more = false;  // unsettled rows are read again next time; stop paging behind them
      }
      if (row[2].as<std::string>() != model_) continue;
      const pqxx::binarystring bytes(row[4]);
      vector.clear();
      DecodeVector(bytes.data(), bytes.size(), vector);
      if (index_.Add(row[1].as<std::string>(), row[0].as<int64_t>(), vector)) ++counts.added;
    }
  }
  for (bool more = true; more;) {
    const auto rows = txn.exec_params(sql::kDeletionsAfter, deletion_tx_, deletion_id_, static_cast<int64_t>(batch_));
    more = rows.size() == batch_;
    bool settled_prefix = true;
    for (const auto& row : rows) {
      if (row[4].as<bool>() && settled_prefix) {
        deletion_tx_ = row[3].as<std::string>();
        deletion_id_ = row[0].as<int64_t>();
      } else {
        settled_prefix = false;
        more = false;
      }
      if (index_.Remove(row[2].as<std::string>(), row[1].as<int64_t>())) ++counts.removed;
    }
  }
  txn.commit();
  return counts;
}

QueryInput ReadQuery(const config::JsonObject& o, const QueryOptions& options) {
  QueryInput input;
  const auto query = o.Required("query");
  input.query = query.AsString({.max_bytes = options.max_query_bytes});
  if (!IsValidUtf8(input.query)) query.Fail(config::JsonReason::invalid_value, "the query must be UTF-8");
  if (input.query.find_first_not_of(" \t\r\n") == std::string::npos) {
    query.Fail(config::JsonReason::empty, "the query has nothing but whitespace");
  }
  input.k = static_cast<int>(o.IntOr("k", options.default_k, 1, options.max_k));
  return input;
}

runtime::Handler MakeQueryHandler(std::shared_ptr<providers::ModelProvider> provider,
                                  std::shared_ptr<const policy::PolicyTable> policy_table,
                                  std::shared_ptr<ChunkIndex> index, std::shared_ptr<db::ConnectionPool> pool,
                                  QueryOptions options, std::shared_ptr<spdlog::logger> logger) {
  return [=](runtime::HandlerContext& ctx) {
    const std::string& model = index->model();
    if (ctx.assignment != nullptr && ctx.assignment->model != model) {
      return HandlerResult::Fail("model_not_served", "this dispatcher searches " + model + " vectors");
    }
    QueryInput input;
    try {
      const auto doc = config::JsonDocument::Parse(ctx.message.payload_json);
      const auto o = doc.root().AsObject();
      // From the executor (an edge intent): {__assignment, intent, input: {query, k?}}.
      if (auto routed = o.OptionalObject("input")) {
        input = ReadQuery(*routed, options);
        routed->Finish();
        (void)o.Optional("intent");
      } else {
        input = ReadQuery(o, options);
      }
      (void)o.Optional("__assignment");
      o.Finish();
    } catch (const config::JsonError& e) {
      return HandlerResult::Fail("invalid_input", e.what());
    }
    Embedded embedded;
    try {
      embedded = EmbedInBatches(*provider, {input.query}, model, 1, runtime::ControlOf(ctx));
    } catch (const providers::ProviderError& e) {
      return runtime::ProviderFailure(ctx, e, *logger);
    }
    if (ctx.assignment != nullptr) {
      (void)ctx.usage.Report(policy::PricedUsage(policy_table->prices(), model, embedded.usage.input_tokens, 0)
                                 .value_or(embedded.usage));
    }
    const std::string& tenant = ctx.message.tenant;
    const auto& vector = embedded.vectors.front();
    json results = json::array();
    std::string used;
    pool->With([&](pqxx::connection& conn) {
      index->CatchUp(conn);
      results = json::array();
      // Candidates come from memory; their rows come from the table, so a chunk replaced a moment
      // ago never answers. Too few survivors (deletions not yet seen) -> the exact search.
      for (const SearchMode wanted : {options.mode, SearchMode::exact}) {
        const SearchMode mode = index->index().Resolve(tenant, wanted);
        const auto hits = index->index().Search(tenant, vector, static_cast<size_t>(input.k), mode);
        used = mode == SearchMode::exact ? "exact" : "hnsw";
        std::vector<int64_t> ids;
        for (const auto& hit : hits) ids.push_back(hit.chunk_id);
        pqxx::read_transaction txn(conn);
        std::map<int64_t, pqxx::row> rows;
        const auto found = txn.exec_params(sql::kChunkRows, tenant, db::IntArrayLiteral(ids));
        for (const auto& row : found) rows.emplace(row[0].as<int64_t>(), row);
        for (const auto& hit : hits) {
          const auto it = rows.find(hit.chunk_id);
          if (it == rows.end()) continue;
          results.push_back({{"chunk_id", hit.chunk_id},
                             {"doc_id", it->second[1].as<std::string>()},
                             {"title", it->second[3].as<std::string>()},
                             {"text", it->second[2].as<std::string>()},
                             {"score", hit.score}});
        }
        if (rows.size() == hits.size() || mode == SearchMode::exact) break;
        results = json::array();
      }
    });
    json out = {{"results", std::move(results)}, {"search", used}, {"model", model}};
    return HandlerResult::Complete(out.dump(), std::to_string(out["results"].size()) + " results (" + used + ")");
  };
}

std::unique_ptr<runtime::Component> MakeIndexFollower(std::shared_ptr<ChunkIndex> index, const std::string& database_url,
                                                      std::chrono::milliseconds interval,
                                                      std::shared_ptr<spdlog::logger> logger) {
  auto last_prune = std::make_shared<std::chrono::steady_clock::time_point>();
  auto loaded = std::make_shared<bool>(false);
  return std::make_unique<runtime::PeriodicTask>(
      runtime::PeriodicOptions{"rag-index-follower", database_url, interval},
      [index, logger, last_prune, loaded](pqxx::connection& conn, std::stop_token) {
        const auto started = std::chrono::steady_clock::now();
        const auto counts = index->CatchUp(conn);
        if (!*loaded) {
          *loaded = true;
          logger->info("index of {} vectors loaded: {} vectors, {} ms", index->model(), index->index().size(),
                       std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
        } else if (counts.added + counts.removed > 0) {
          logger->debug("index: {} added, {} removed", counts.added, counts.removed);
        }
        if (std::chrono::steady_clock::now() - *last_prune > std::chrono::hours(1)) {
          *last_prune = std::chrono::steady_clock::now();
          pqxx::nontransaction(conn).exec_params(sql::kPruneDeletions, 86400);
        }
      },
      logger);
}

}  // namespace cogo::rag
