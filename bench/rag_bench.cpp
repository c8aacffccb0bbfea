// cogo-rag-bench: retrieval quality and speed (docs/benchmarks.md "Retrieval";
// bench/run-rag-bench.sh makes the corpus and the database).
//
//   corpus      JSON lines {doc_id, title, query, text}: one document per page, the query's
//               answer is its page (bench/rag/extract_pgdocs.py)
//   indexing    the real rag/embed handler (MakeEmbedHandler, offline hash embedder) in in-process
//               Workers on the real bus: every document a message, stored in PostgreSQL; documents
//               and chunks per second. Three tenants: "q" the corpus once (quality), "k10" and
//               "k100" the corpus repeated under new doc_ids up to 10k and 100k chunks (speed)
//   index load  a ChunkIndex (the dispatcher's) reading every chunk and building the HNSW graphs
//   quality     per query: its embedding, the top 100 chunks exact and HNSW, pages ranked by their
//               best chunk; recall@1/5/10 and MRR of the answer page; PostgreSQL full text
//               (ts_rank over an OR of the query's words) as the lexical baseline; random is k/N
//   latency     per query, search alone (top 10) at 10k and 100k chunks, exact vs HNSW, p50/p99;
//               ANN recall@10 against exact (tie-aware: the repeated corpus has identical vectors)
// Single-threaded main; the workers own their threads.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "cogo/bus/bus.h"
#include "cogo/db/connection.h"
#include "cogo/db/pool.h"
#include "cogo/log/logging.h"
#include "cogo/policy/policy_table.h"
#include "cogo/providers/hash_embedder.h"
#include "cogo/rag/dispatcher.h"
#include "cogo/rag/embed_worker.h"
#include "cogo/runtime/worker.h"
#include "cogo/wake/wake_hub.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Config {
  std::string database_url;
  std::string corpus;
  std::string policy = "config/policy.example.json";
  int workers = 2;
  int concurrency = 2;
  size_t small = 10000;
  size_t big = 100000;
  size_t ef = 256;  // the dispatcher's default
  size_t latency_queries = 1000;
  bool lexical = true;
};

struct Page {
  std::string doc_id, title, query, text;
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

std::vector<Page> LoadCorpus(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<Page> pages;
  for (std::string line; std::getline(in, line);) {
    const auto j = json::parse(line);
    pages.push_back({j["doc_id"], j["title"], j["query"], j["text"]});
  }
  return pages;
}

// Indexes `docs` for `tenant` through the real rag/embed handler on the bus; returns the seconds.
double Index(const Config& cfg, const std::string& tenant, const std::vector<Page>& docs) {
  auto logger = cogo::log::Get("rag-bench");
  const auto table = cogo::policy::LoadPolicyFile(cfg.policy);
  auto provider = std::make_shared<cogo::providers::HashEmbedder>();
  cogo::rag::EmbedWorkerOptions options;
  options.dimension_hint = provider->dimension();
  cogo::wake::WakeHubOptions ho;
  ho.database_url = cfg.database_url;
  cogo::wake::WakeHub hub(ho, logger);
  hub.Start();
  std::vector<std::unique_ptr<cogo::runtime::Worker>> workers;
  for (int i = 0; i < cfg.workers; ++i) {
    cogo::runtime::WorkerOptions o;
    o.database_url = cfg.database_url;
    o.service = "rag";
    o.role = "embed";
    o.concurrency = cfg.concurrency;
    o.guards.require_assignment = true;
    o.worker_id = fmt::format("rag-bench-{}-{}", tenant, i);
    auto pool = std::make_shared<cogo::db::ConnectionPool>(cfg.database_url, "rag-bench", cfg.concurrency);
    workers.push_back(std::make_unique<cogo::runtime::Worker>(
        o, cogo::rag::MakeEmbedHandler(provider, table, pool, options, logger), &hub, logger));
  }
  const json assignment = {{"agent_id", "rag-bench"}, {"version", "v1"}, {"model", "offline-embed"},
                           {"budget", {{"maxCostUsd", 1.0}, {"maxTokens", 100000000}}}, {"ttl_ms", 3600000}};
  std::vector<cogo::bus::PublishRequest> batch;
  for (const auto& page : docs) {
    cogo::bus::PublishRequest r;
    r.service = "rag";
    r.role = "embed";
    r.tenant = tenant;
    r.payload_json = json{{"doc_id", page.doc_id}, {"title", page.title}, {"text", page.text},
                          {"__assignment", assignment}}.dump();
    batch.push_back(std::move(r));
  }
  auto conn = cogo::db::Connect(cfg.database_url, "rag-bench");
  {
    cogo::bus::Bus bus(*conn);
    for (size_t i = 0; i < batch.size(); i += 500) {
      (void)bus.PublishBatch(std::vector<cogo::bus::PublishRequest>(
          batch.begin() + static_cast<std::ptrdiff_t>(i), batch.begin() + static_cast<std::ptrdiff_t>(std::min(batch.size(), i + 500))));
    }
  }
  const auto started = Clock::now();
  for (auto& w : workers) w->Start();
  const std::string pending = "SELECT count(*) FROM agent_messages WHERE service = 'rag' AND role = 'embed' AND tenant = " +
                              conn->quote(tenant) + " AND status IN ('queued', 'running')";
  while (pqxx::nontransaction(*conn).exec(pending)[0][0].as<int64_t>() > 0) std::this_thread::sleep_for(20ms);
  const double seconds = Seconds(Clock::now() - started);
  for (auto& w : workers) w->Drain();
  hub.Stop();
  const auto failed = pqxx::nontransaction(*conn).exec(
      "SELECT count(*) FROM agent_messages WHERE service = 'rag' AND tenant = " + conn->quote(tenant) + " AND status <> 'done'");
  if (failed[0][0].as<int64_t>() > 0) throw std::runtime_error(tenant + ": some documents failed to index");
  return seconds;
}

// The corpus repeated under new doc_ids until its chunks reach `target`.
std::vector<Page> Repeat(const std::vector<Page>& pages, size_t target) {
  std::vector<Page> out;
  size_t chunks = 0;
  for (size_t copy = 0; chunks < target; ++copy) {
    for (const auto& page : pages) {
      if (chunks >= target) break;
      Page p = page;
      p.doc_id += "~" + std::to_string(copy);
      chunks += cogo::rag::SplitText(p.text).size();
      out.push_back(std::move(p));
    }
  }
  return out;
}

struct Quality {
  double r1 = 0, r5 = 0, r10 = 0, mrr = 0;
  void Add(int rank) {  // 1-based rank of the answer page, 0 when not found
    if (rank == 1) r1 += 1;
    if (rank >= 1 && rank <= 5) r5 += 1;
    if (rank >= 1 && rank <= 10) r10 += 1;
    if (rank >= 1) mrr += 1.0 / rank;
  }
  [[nodiscard]] std::string Row(const std::string& name, size_t n) const {
    const double d = static_cast<double>(n);
    return fmt::format("| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} |", name, r1 / d, r5 / d, r10 / d, mrr / d);
  }
};

// The rank of `answer` among the pages of `chunk_docs` (in chunk order, each page once).
int PageRank(const std::vector<std::string>& chunk_docs, const std::string& answer) {
  std::set<std::string> seen;
  for (const auto& doc : chunk_docs) {
    if (!seen.insert(doc).second) continue;
    if (doc == answer) return static_cast<int>(seen.size());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"cogo-rag-bench: retrieval quality and speed"};
  app.add_option("--database-url", cfg.database_url)->envname("COGO_DATABASE_URL")->required();
  app.add_option("--corpus", cfg.corpus, "JSON lines {doc_id, title, query, text}")->required();
  app.add_option("--policy", cfg.policy)->capture_default_str();
  app.add_option("--workers", cfg.workers)->capture_default_str();
  app.add_option("--concurrency", cfg.concurrency)->capture_default_str();
  app.add_option("--small", cfg.small, "chunks of the first speed point")->capture_default_str();
  app.add_option("--big", cfg.big, "chunks of the second speed point")->capture_default_str();
  app.add_option("--hnsw-ef", cfg.ef)->capture_default_str();
  app.add_option("--latency-queries", cfg.latency_queries)->capture_default_str();
  app.add_flag("!--no-lexical", cfg.lexical, "skip the PostgreSQL full-text baseline");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they happen
  cogo::log::Setup(cogo::log::Format::text, "warn");

  const auto pages = LoadCorpus(cfg.corpus);
  std::vector<const Page*> asked;
  for (const auto& p : pages) {
    if (!p.query.empty()) asked.push_back(&p);
  }
  fmt::print("corpus: {} pages, {} queries\n", pages.size(), asked.size());

  auto conn = cogo::db::Connect(cfg.database_url, "rag-bench");
  const auto count_chunks = [&](const std::string& tenant) {
    return pqxx::nontransaction(*conn).exec("SELECT count(*) FROM rag_chunks WHERE tenant = " + conn->quote(tenant))[0][0].as<int64_t>();
  };
  std::map<std::string, size_t> sizes;
  std::vector<std::string> index_rows;
  for (const auto& [tenant, docs] : std::vector<std::pair<std::string, std::vector<Page>>>{
           {"q", pages}, {"k10", Repeat(pages, cfg.small)}, {"k100", Repeat(pages, cfg.big)}}) {
    const double seconds = Index(cfg, tenant, docs);
    sizes[tenant] = static_cast<size_t>(count_chunks(tenant));
    index_rows.push_back(fmt::format("| {} | {} | {} | {:.1f} | {:.0f} | {:.0f} |", tenant, docs.size(), sizes[tenant],
                                     seconds, static_cast<double>(docs.size()) / seconds,
                                     static_cast<double>(sizes[tenant]) / seconds));
    fmt::print("indexed {}: {} documents, {} chunks in {:.1f} s\n", tenant, docs.size(), sizes[tenant], seconds);
  }

  cogo::rag::IndexOptions io;
  io.ef_search = cfg.ef;
  io.exact_below = 0;
  cogo::rag::ChunkIndex index("offline-embed", io);
  auto started = Clock::now();
  (void)index.CatchUp(*conn);
  const double load_seconds = Seconds(Clock::now() - started);
  fmt::print("index load (read + HNSW build, {} vectors): {:.1f} s\n", index.index().size(), load_seconds);

  std::map<int64_t, std::string> chunk_doc;
  for (const auto& row : pqxx::nontransaction(*conn).exec("SELECT id, doc_id FROM rag_chunks WHERE tenant = 'q'")) {
    chunk_doc[row[0].as<int64_t>()] = row[1].as<std::string>();
  }
  const cogo::providers::HashEmbedder embedder;
  Quality exact, hnsw, lexical;
  double ann_overlap = 0;
  std::vector<double> embed_ms;
  for (const Page* page : asked) {
    auto t = Clock::now();
    const auto vec = embedder.EmbedText(page->query);
    embed_ms.push_back(Seconds(Clock::now() - t) * 1000);
    for (auto [mode, quality] : {std::pair{cogo::rag::SearchMode::exact, &exact}, std::pair{cogo::rag::SearchMode::hnsw, &hnsw}}) {
      std::vector<std::string> docs;
      for (const auto& hit : index.index().Search("q", vec, 100, mode)) docs.push_back(chunk_doc[hit.chunk_id]);
      quality->Add(PageRank(docs, page->doc_id));
    }
    const auto e10 = index.index().Search("q", vec, 10, cogo::rag::SearchMode::exact);
    const auto h10 = index.index().Search("q", vec, 10, cogo::rag::SearchMode::hnsw);
    std::set<int64_t> truth;
    for (const auto& h : e10) truth.insert(h.chunk_id);
    for (const auto& h : h10) ann_overlap += static_cast<double>(truth.count(h.chunk_id)) / static_cast<double>(std::max<size_t>(1, e10.size()));
  }
  if (cfg.lexical) {
    pqxx::nontransaction(*conn).exec(
        "CREATE INDEX IF NOT EXISTS rag_bench_fts ON rag_chunks USING gin (to_tsvector('english', text)) WHERE tenant = 'q'");
    for (const Page* page : asked) {
      std::vector<std::string> docs;
      for (const auto& row : pqxx::nontransaction(*conn).exec_params(
               "SELECT doc_id FROM rag_chunks, (SELECT replace(plainto_tsquery('english', $1)::text, '&', '|')::tsquery AS q) w "
               "WHERE tenant = 'q' AND w.q::text <> '' AND to_tsvector('english', text) @@ w.q "
               "ORDER BY ts_rank(to_tsvector('english', text), w.q) DESC, id LIMIT 100",
               page->query)) {
        docs.push_back(row[0].as<std::string>());
      }
      lexical.Add(PageRank(docs, page->doc_id));
    }
  }

  std::vector<std::string> latency_rows;
  for (const std::string tenant : {"k10", "k100"}) {
    std::vector<double> exact_ms, hnsw_ms;
    double overlap = 0;
    for (size_t i = 0; i < cfg.latency_queries; ++i) {
      const auto vec = embedder.EmbedText(asked[i % asked.size()]->query);
      auto t = Clock::now();
      const auto e = index.index().Search(tenant, vec, 10, cogo::rag::SearchMode::exact);
      exact_ms.push_back(Seconds(Clock::now() - t) * 1000);
      t = Clock::now();
      const auto h = index.index().Search(tenant, vec, 10, cogo::rag::SearchMode::hnsw);
      hnsw_ms.push_back(Seconds(Clock::now() - t) * 1000);
      // Tie-aware: the repeated corpus holds identical vectors, so an HNSW hit counts when it
      // scores at least the exact 10th (another copy of a true neighbour is as near).
      const float tenth = e.empty() ? 0.0F : e.back().score - 1e-6F;
      for (const auto& x : h) overlap += x.score >= tenth ? 0.1 : 0.0;
    }
    latency_rows.push_back(fmt::format("| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} |", sizes[tenant],
                                       Percentile(exact_ms, 0.5), Percentile(exact_ms, 0.99), Percentile(hnsw_ms, 0.5),
                                       Percentile(hnsw_ms, 0.99), overlap / static_cast<double>(cfg.latency_queries)));
  }

  const size_t n = asked.size();
  fmt::print("\n### Quality ({} queries over {} pages, {} chunks; hash-v1, 384 dimensions)\n\n", n, pages.size(), sizes["q"]);
  fmt::print("| search | recall@1 | recall@5 | recall@10 | MRR |\n| --- | --- | --- | --- | --- |\n");
  fmt::print("{}\n{}\n", exact.Row("exact", n), hnsw.Row(fmt::format("HNSW (M 16, ef {})", cfg.ef), n));
  if (cfg.lexical) fmt::print("{}\n", lexical.Row("PostgreSQL full text (ts_rank, OR of the words)", n));
  const double np = static_cast<double>(pages.size());
  fmt::print("| random (expected) | {:.4f} | {:.4f} | {:.4f} | - |\n", 1 / np, 5 / np, 10 / np);
  fmt::print("\nANN recall@10 vs exact (quality corpus): {:.3f}; query embedding p50 {:.3f} ms\n",
             ann_overlap / static_cast<double>(n), Percentile(embed_ms, 0.5));
  fmt::print("\n### Indexing (rag/embed on the bus, {} workers x {} threads)\n\n", cfg.workers, cfg.concurrency);
  fmt::print("| tenant | documents | chunks | seconds | documents/s | chunks/s |\n| --- | --- | --- | --- | --- | --- |\n");
  for (const auto& row : index_rows) fmt::print("{}\n", row);
  fmt::print("\nindex load at dispatcher start ({} vectors, read + HNSW build): {:.1f} s\n", index.index().size(), load_seconds);
  fmt::print("\n### Query latency (search only, top 10, {} queries)\n\n", cfg.latency_queries);
  fmt::print("| chunks | exact p50 ms | exact p99 ms | HNSW p50 ms | HNSW p99 ms | ANN recall@10 |\n| --- | --- | --- | --- | --- | --- |\n");
  for (const auto& row : latency_rows) fmt::print("{}\n", row);
  return 0;
}
