#include "cogo/kg/builder.h"

#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include <algorithm>
#include <map>
#include <tuple>

#include "cogo/bus/bus.h"
#include "cogo/config/json_reader.h"
#include "cogo/kg/extract.h"
#include "cogo/policy/metering.h"
#include "cogo/runtime/model_handler.h"
#include "cogo/usage/usage_log.h"
#include "rag/statements.h"

namespace cogo::kg {
namespace {

namespace sql = rag::sql;
using nlohmann::json;
using runtime::HandlerResult;

struct ChunkText {
  int64_t id;
  std::string text;
};

// One chunk through the chat extractor: asked again when the reply is malformed.
std::variant<Extraction, HandlerResult> ExtractWithChat(providers::ModelProvider& chat, const std::string& model,
                                                        const ChunkText& chunk, const BuilderOptions& options,
                                                        const policy::PolicyTable& table, runtime::HandlerContext& ctx) {
  std::string last_error;
  for (int attempt = 1; attempt <= options.reply_attempts; ++attempt) {
    providers::ChatRequest request;
    request.model = model;
    request.messages = {{"system", ExtractionSystemPrompt()}, {"user", ExtractionUserPrompt(chunk.text)}};
    request.max_tokens = static_cast<int>(std::min<int64_t>(options.max_tokens, std::max<int64_t>(1, ctx.assignment->budget.max_tokens)));
    request.temperature = 0.0;
    request.control = runtime::ControlOf(ctx);
    providers::ChatResponse response;
    try {
      response = chat.Chat(request);
    } catch (const providers::ProviderError& e) {
      return runtime::FromProviderError(e);
    }
    const auto usage = policy::PricedUsage(table.prices(), model, response.usage.input_tokens,
                                           response.usage.output_tokens).value_or(response.usage);
    if (ctx.usage.Report(usage) != policy::MeterVerdict::within) return HandlerResult::Fail("budget_exceeded");
    auto parsed = ParseExtraction(response.content);
    if (auto* extraction = std::get_if<Extraction>(&parsed)) return std::move(*extraction);
    last_error = std::get<std::string>(parsed);
  }
  return HandlerResult::Fail("extraction_malformed", "chunk " + std::to_string(chunk.id) + ": " + last_error);
}

}  // namespace

runtime::Handler MakeBuildHandler(std::shared_ptr<providers::ModelProvider> chat,
                                  std::shared_ptr<const policy::PolicyTable> policy_table,
                                  std::shared_ptr<db::ConnectionPool> pool, BuilderOptions options,
                                  std::shared_ptr<spdlog::logger> logger) {
  return [=](runtime::HandlerContext& ctx) {
    auto priced = runtime::PricedModel(ctx, *policy_table);
    if (auto* refused = std::get_if<HandlerResult>(&priced)) return std::move(*refused);
    const std::string model = std::get<std::string>(priced);
    const bool offline = model == kOfflineModel;
    if (!offline && chat == nullptr) {
      return HandlerResult::Fail("model_not_served", "this builder has no chat provider for " + model);
    }
    std::string doc_id;
    try {
      const auto doc = config::JsonDocument::Parse(ctx.message.payload_json);
      const auto o = doc.root().AsObject();
      doc_id = o.String("doc_id", {.max_bytes = 200});
      (void)o.Optional("title");
      (void)o.Optional("__assignment");
      o.Finish();
    } catch (const config::JsonError& e) {
      return HandlerResult::Fail("invalid_input", e.what());
    }
    const std::string& tenant = ctx.message.tenant;

    int64_t document_id = 0;
    std::string content, built;
    std::vector<ChunkText> chunks;
    pool->With([&](pqxx::connection& conn) {
      pqxx::read_transaction txn(conn);
      const auto rows = txn.exec_params(sql::kDocumentGraphState, tenant, doc_id);
      if (rows.empty()) return;
      document_id = rows[0][0].as<int64_t>();
      content = rows[0][1].as<std::string>();
      built = rows[0][2].as<std::string>();
      chunks.clear();
      for (const auto& row : txn.exec_params(sql::kDocumentChunks, document_id)) {
        chunks.push_back({row[0].as<int64_t>(), row[1].as<std::string>()});
      }
    });
    if (document_id == 0) return HandlerResult::Fail("document_not_found", "no document " + doc_id + " for this tenant");
    json result = {{"doc_id", doc_id}, {"model", model}};
    if (built == content) {
      result["status"] = "unchanged";
      return HandlerResult::Complete(result.dump(), "graph of " + doc_id + " is current");
    }

    std::vector<Extraction> extractions;
    extractions.reserve(chunks.size());
    for (const auto& chunk : chunks) {
      if (ctx.stop.stop_requested()) return HandlerResult::Retry("stopped");
      if (offline) {
        extractions.push_back(ExtractOffline(chunk.text));
        continue;
      }
      auto extracted = ExtractWithChat(*chat, model, chunk, options, *policy_table, ctx);
      if (auto* verdict = std::get_if<HandlerResult>(&extracted)) return std::move(*verdict);
      extractions.push_back(std::get<Extraction>(std::move(extracted)));
    }

    // Entities and relations keyed as the tables are, written in key order so concurrent
    // builders of one tenant lock rows in the same order.
    std::map<std::pair<std::string, std::string>, std::string> entities;  // (norm, type) -> name
    for (const auto& extraction : extractions) {
      for (const auto& e : extraction.entities) entities.emplace(std::make_pair(NormalizeName(e.name), e.type), e.name);
    }
    bool committed = false, changed = false, gone = false;
    pool->With([&](pqxx::connection& conn) {
      bus::Bus bus(conn);
      pqxx::work txn(conn);
      if (!bus.LockLeases(txn, {ctx.message.lease}).front()) return;
      const auto rows = txn.exec_params(sql::kDocumentForGraph, tenant, doc_id);
      if (rows.empty()) {
        gone = true;
        return;
      }
      if (rows[0][0].as<int64_t>() != document_id || rows[0][1].as<std::string>() != content) {
        changed = true;
        return;
      }
      txn.exec_params(sql::kDeleteProvenance, document_id);
      size_t mentions = 0;
      std::map<std::pair<std::string, std::string>, int64_t> entity_ids;
      for (const auto& [key, name] : entities) {
        entity_ids[key] = txn.exec_params1(sql::kUpsertEntity, tenant, name, key.first, key.second)[0].as<int64_t>();
      }
      std::map<std::tuple<int64_t, int64_t, std::string>, int64_t> relation_ids;
      std::vector<std::tuple<int64_t, int64_t, std::string>> wanted;
      for (const auto& extraction : extractions) {
        for (const auto& r : extraction.relations) {
          const auto& s = extraction.entities[r.source];
          const auto& t = extraction.entities[r.target];
          wanted.emplace_back(entity_ids.at({NormalizeName(s.name), s.type}), entity_ids.at({NormalizeName(t.name), t.type}), r.type);
        }
      }
      std::sort(wanted.begin(), wanted.end());
      for (const auto& key : wanted) {
        if (relation_ids.count(key) > 0) continue;
        relation_ids[key] = txn.exec_params1(sql::kUpsertRelation, tenant, std::get<0>(key), std::get<1>(key),
                                             std::get<2>(key))[0].as<int64_t>();
      }
      for (size_t i = 0; i < chunks.size(); ++i) {
        for (const auto& e : extractions[i].entities) {
          txn.exec_params(sql::kInsertProvenance, tenant, chunks[i].id, entity_ids.at({NormalizeName(e.name), e.type}), nullptr);
          ++mentions;
        }
        for (const auto& r : extractions[i].relations) {
          const auto& s = extractions[i].entities[r.source];
          const auto& t = extractions[i].entities[r.target];
          const auto id = relation_ids.at({entity_ids.at({NormalizeName(s.name), s.type}),
                                           entity_ids.at({NormalizeName(t.name), t.type}), r.type});
          txn.exec_params(sql::kInsertProvenance, tenant, chunks[i].id, nullptr, id);
          ++mentions;
        }
      }
      txn.exec_params(sql::kGraphBuilt, document_id, content);
      result["status"] = "built";
      result["chunks"] = chunks.size();
      result["entities"] = entity_ids.size();
      result["relations"] = relation_ids.size();
      result["mentions"] = mentions;
      if (ctx.usage.reported()) {
        const auto usage = ctx.usage.total();
        result["usage"] = {{"input_tokens", usage.input_tokens}, {"output_tokens", usage.output_tokens}, {"cost_usd", usage.cost_usd}};
        usage::Record(txn, {usage::RecordOf(ctx.message, ctx.assignment, usage, "completed")});
      }
      const std::string summary = "graph of " + doc_id + ": " + std::to_string(entity_ids.size()) + " entities, " +
                                  std::to_string(relation_ids.size()) + " relations";
      if (!bus.Complete(txn, {ctx.message.lease, result.dump(), summary, ""})) return;
      txn.commit();
      committed = true;
    });
    if (gone) return HandlerResult::Fail("document_not_found", doc_id + " was removed while extracting");
    if (changed) return HandlerResult::Retry("document_changed", doc_id + " was re-indexed while extracting");
    if (!committed) return HandlerResult::LeaseLost();  // a later claim owns it now
    logger->debug("message {}: graph of {} built", ctx.message.lease.message_id, doc_id);
    return HandlerResult::Committed();
  };
}

}  // namespace cogo::kg
