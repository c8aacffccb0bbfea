// cogo-rag-embed: the (rag, embed) worker — documents split into chunks, embedded and stored
// with their vectors in PostgreSQL (see include/cogo/rag/embed_worker.h). Embeddings come from
// the offline hash embedder unless --provider-base-url names an OpenAI-compatible server.
#include <CLI/CLI.hpp>

#include "cogo/http/health_listener.h"
#include "cogo/policy/policy_flag.h"
#include "cogo/rag/embed_worker.h"
#include "cogo/rag/embedder.h"
#include "cogo/runtime/worker_component.h"

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  worker.service = "rag";
  worker.role = "embed";
  worker.guards.require_assignment = true;
  cogo::rag::EmbedderFlags embedder;
  cogo::rag::EmbedWorkerOptions embed;
  cogo::policy::PolicyFlag policy;
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener(cogo::runtime::WorkerDaemon({
      "cogo-rag-embed", "chunks, embeds and stores documents for rag/embed", worker, false,
      [&](CLI::App& app) {
        cogo::rag::AddEmbedderOptions(app, embedder);
        cogo::policy::AddPolicyOption(app, policy);
        app.add_option("--chunk-max-chars", embed.chunking.max_chars, "bytes per chunk, at most")->check(CLI::Range(64, 100000))->capture_default_str();
        app.add_option("--chunk-overlap-chars", embed.chunking.overlap_chars, "bytes repeated from the chunk before")->check(CLI::Range(0, 50000))->capture_default_str();
        app.add_option("--max-text-bytes", embed.max_text_bytes, "larger documents fail document_too_large")->check(CLI::Range(1, 1 << 20))->capture_default_str();
      },
      [&](cogo::runtime::DaemonContext& ctx) -> cogo::runtime::Handler {
        const auto table = cogo::policy::LoadPolicy(policy, *ctx.logger);
        embed.chunking.min_chars = embed.chunking.max_chars / 2;
        embed.batch_size = embedder.batch_size;
        embed.dimension_hint = embedder.provider.base_url.empty() ? embedder.dimension : 0;
        auto provider = cogo::rag::MakeEmbeddingProvider(embedder, cogo::providers::MakePricer(table->prices()), ctx.logger);
        auto pool = std::make_shared<cogo::db::ConnectionPool>(ctx.options.database_url, "cogo-rag-embed", worker.concurrency);
        return cogo::rag::MakeEmbedHandler(provider, table, pool, embed, ctx.logger);
      }})));
}
