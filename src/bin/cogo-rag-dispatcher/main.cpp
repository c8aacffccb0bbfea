// cogo-rag-dispatcher: the (rag, query) worker — a query embedded and answered with the
// tenant's top-k chunks from an in-memory HNSW index built from PostgreSQL at start and kept
// current (see include/cogo/rag/dispatcher.h). Run as many as you like: each follows the table.
#include <CLI/CLI.hpp>

#include "cogo/http/health_listener.h"
#include "cogo/policy/policy_flag.h"
#include "cogo/providers/hash_embedder.h"
#include "cogo/rag/dispatcher.h"
#include "cogo/rag/embedder.h"
#include "cogo/runtime/worker_component.h"

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  worker.service = "rag";
  worker.role = "query";
  cogo::rag::EmbedderFlags embedder;
  cogo::rag::IndexOptions index;
  index.ef_search = 256;  // ANN recall@10 0.975 at 100k chunks, 0.881 at 64 (docs/benchmarks.md)
  cogo::rag::QueryOptions query;
  std::string model(cogo::providers::HashEmbedder::kModel);
  cogo::policy::PolicyFlag policy;
  int follow_ms = 250;
  const std::map<std::string, cogo::rag::SearchMode> modes = {
      {"auto", cogo::rag::SearchMode::automatic}, {"exact", cogo::rag::SearchMode::exact}, {"hnsw", cogo::rag::SearchMode::hnsw}};
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener({
      "cogo-rag-dispatcher", "top-k chunk retrieval for rag/query",
      [&](CLI::App& app) {
        cogo::runtime::AddWorkerOptions(app, worker, false);
        cogo::rag::AddEmbedderOptions(app, embedder);
        cogo::policy::AddPolicyOption(app, policy);
        app.add_option("--embed-model", model, "the embedding model whose vectors this dispatcher searches")->envname("COGO_EMBED_MODEL")->capture_default_str();
        app.add_option("--search", query.mode, "auto (exact below --exact-below vectors), exact or hnsw")->transform(CLI::CheckedTransformer(modes))->capture_default_str();
        app.add_option("--exact-below", index.exact_below, "tenants with fewer vectors are searched exactly in auto mode")->capture_default_str();
        app.add_option("--hnsw-m", index.hnsw_m, "HNSW graph degree")->check(CLI::Range(4, 128))->capture_default_str();
        app.add_option("--hnsw-ef-construction", index.ef_construction, "HNSW candidates while inserting")->check(CLI::Range(8, 2000))->capture_default_str();
        app.add_option("--hnsw-ef", index.ef_search, "HNSW candidates while searching")->check(CLI::Range(8, 2000))->capture_default_str();
        app.add_option("--follow-ms", follow_ms, "how often the index reads new chunks between queries")->check(CLI::Range(10, 60000))->capture_default_str();
      },
      [&](cogo::runtime::DaemonContext& ctx) {
        const auto table = cogo::policy::LoadPolicy(policy, *ctx.logger);
        auto provider = cogo::rag::MakeEmbeddingProvider(embedder, cogo::providers::MakePricer(table->prices()), ctx.logger);
        auto chunks = std::make_shared<cogo::rag::ChunkIndex>(model, index);
        auto pool = std::make_shared<cogo::db::ConnectionPool>(ctx.options.database_url, "cogo-rag-dispatcher", worker.concurrency);
        std::vector<std::unique_ptr<cogo::runtime::Component>> components;
        components.push_back(cogo::rag::MakeIndexFollower(chunks, ctx.options.database_url, std::chrono::milliseconds(follow_ms), ctx.logger));
        components.push_back(cogo::runtime::MakeWorkerComponent(
            worker, cogo::rag::MakeQueryHandler(provider, table, chunks, pool, query, ctx.logger), ctx));
        return components;
      }}));
}
