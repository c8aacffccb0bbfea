#include "cogo/rag/embed_worker.h"

#include <nlohmann/json.hpp>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>

#include <optional>
#include <variant>

#include "cogo/bus/bus.h"
#include "cogo/policy/metering.h"
#include "cogo/rag/embedder.h"
#include "cogo/runtime/model_handler.h"
#include "cogo/usage/usage_log.h"
#include "rag/statements.h"
#include "rag/vector_bytes.h"

namespace cogo::rag {
namespace {

using nlohmann::json;
using runtime::HandlerResult;

}  // namespace

runtime::Handler MakeEmbedHandler(std::shared_ptr<providers::ModelProvider> provider,
                                  std::shared_ptr<const policy::PolicyTable> policy_table,
                                  std::shared_ptr<db::ConnectionPool> pool, EmbedWorkerOptions options,
                                  std::shared_ptr<spdlog::logger> logger) {
  return [=](runtime::HandlerContext& ctx) {
    auto priced = runtime::PricedModel(ctx, *policy_table);
    if (auto* refused = std::get_if<HandlerResult>(&priced)) return std::move(*refused);
    const std::string model = std::get<std::string>(priced);
    auto parsed = ParseDocument(ctx.message.payload_json, options.max_text_bytes);
    if (const auto* error = std::get_if<DocumentError>(&parsed)) {
      return HandlerResult::Fail(error->reason, error->detail);
    }
    const auto document = std::get<DocumentInput>(std::move(parsed));
    const std::string& tenant = ctx.message.tenant;
    const std::string hash = ContentHash(document, model, options.dimension_hint, options.chunking);

    // Unchanged content: nothing to embed or write (checked again under the lock below).
    std::string stored;
    pool->With([&](pqxx::connection& conn) {
      pqxx::read_transaction txn(conn);
      const auto rows = txn.exec_params(sql::kDocumentHash, tenant, document.doc_id);
      if (!rows.empty()) stored = rows[0][0].as<std::string>();
    });
    json result = {{"doc_id", document.doc_id}, {"model", model}, {"content_sha256", hash}};
    if (stored == hash) {
      result["status"] = "unchanged";
      return HandlerResult::Complete(result.dump(), "unchanged " + document.doc_id);
    }

    const auto chunks = SplitText(document.text, options.chunking);
    std::vector<std::string> texts;
    texts.reserve(chunks.size());
    for (const auto& chunk : chunks) texts.push_back(chunk.text);
    Embedded embedded;
    try {
      embedded = EmbedInBatches(*provider, texts, model, options.batch_size, runtime::ControlOf(ctx));
    } catch (const providers::ProviderError& e) {
      return runtime::ProviderFailure(ctx, e, *logger);
    }
    const auto usage = policy::PricedUsage(policy_table->prices(), model, embedded.usage.input_tokens, 0)
                           .value_or(embedded.usage);
    if (ctx.usage.Report(usage) != policy::MeterVerdict::within) {
      return HandlerResult::Fail("budget_exceeded");  // the runtime names the limit and records the spend
    }

    bool committed = false;
    std::string status;
    int64_t document_id = 0;
    pool->With([&](pqxx::connection& conn) {
      bus::Bus bus(conn);
      pqxx::work txn(conn);
      if (!bus.LockLeases(txn, {ctx.message.lease}).front()) return;  // a later claim owns it now
      txn.exec_params(sql::kLockDocument, tenant, document.doc_id);
      const auto rows = txn.exec_params(sql::kDocumentForUpdate, tenant, document.doc_id);
      const int text_bytes = static_cast<int>(document.text.size());
      const int chunk_count = static_cast<int>(chunks.size());
      if (!rows.empty() && rows[0][1].as<std::string>() == hash) {
        document_id = rows[0][0].as<int64_t>();
        status = "unchanged";
      } else if (!rows.empty()) {
        document_id = rows[0][0].as<int64_t>();
        txn.exec_params(sql::kDeleteChunks, document_id);
        txn.exec_params(sql::kUpdateDocument, document_id, document.title, document.source,
                        document.metadata_json, hash, model, text_bytes, chunk_count);
        status = "replaced";
      } else {
        document_id = txn.exec_params1(sql::kInsertDocument, tenant, document.doc_id, document.title,
                                       document.source, document.metadata_json, hash, model,
                                       text_bytes, chunk_count)[0]
                          .as<int64_t>();
        status = "indexed";
      }
      if (status != "unchanged") {
        for (size_t i = 0; i < chunks.size(); ++i) {
          const std::string bytes = EncodeVector(embedded.vectors[i]);
          txn.exec_params(sql::kInsertChunk, document_id, tenant, document.doc_id, static_cast<int>(chunks[i].ord),
                          static_cast<int>(chunks[i].start), static_cast<int>(chunks[i].end), chunks[i].text,
                          model, static_cast<int>(embedded.dimension),
                          pqxx::binarystring(bytes.data(), bytes.size()));
        }
      }
      result["status"] = status;
      result["document_id"] = document_id;
      result["chunks"] = status == "unchanged" ? 0 : chunks.size();
      result["dimension"] = embedded.dimension;
      result["usage"] = {{"input_tokens", usage.input_tokens}, {"cost_usd", usage.cost_usd}};
      usage::Record(txn, {usage::RecordOf(ctx.message, ctx.assignment, usage, "completed")});
      if (!bus.Complete(txn, {ctx.message.lease, result.dump(), status + " " + document.doc_id + " (" +
                                                                    std::to_string(chunks.size()) + " chunks)", ""})) {
        return;  // the lease went between the lock and here: write nothing
      }
      txn.commit();
      committed = true;
    });
    // Not committed: the lease went (its new owner decides); there is nothing for the worker to write.
    if (!committed) return HandlerResult::LeaseLost();
    logger->debug("message {}: {} {} ({} chunks)", ctx.message.lease.message_id, status, document.doc_id, chunks.size());
    return HandlerResult::Committed();
  };
}

}  // namespace cogo::rag
