#include "cogo/orchestrator/request_view.h"

#include <nlohmann/json.hpp>

namespace cogo::orchestrator {
namespace {

using nlohmann::json;

// The tree under a message (bounded depth), each message with its row, and the merged trail.
constexpr const char* kRequestTree = R"SQL(
WITH RECURSIVE tree AS (
  SELECT m.id, 0 AS depth FROM agent_messages m WHERE m.id = $1
  UNION ALL
  SELECT c.id, t.depth + 1 FROM agent_messages c JOIN tree t ON c.parent_id = t.id
  WHERE t.depth < 16
)
SELECT jsonb_build_object(
  'messages', (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'id', m.id, 'parent_id', m.parent_id, 'service', m.service, 'role', m.role,
        'shard', m.shard, 'tenant', m.tenant, 'status', m.status, 'attempts', m.attempts,
        'last_error', m.last_error, 'result', m.result, 'result_snippet', m.result_snippet,
        'correlation_id', m.correlation_id, 'created_at', m.created_at,
        'finished_at', m.finished_at,
        'has_children', EXISTS (SELECT 1 FROM agent_messages k WHERE k.parent_id = m.id))
        ORDER BY m.id), '[]'::jsonb)
      FROM agent_messages m JOIN tree t ON t.id = m.id),
  'trail', (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'message_id', e.message_id, 'route', e.service || '/' || e.role, 'event', e.event,
        'at', e.at, 'detail', e.detail) ORDER BY e.at, e.ord, e.id), '[]'::jsonb)
      FROM bus_trail e JOIN tree t ON t.id = e.message_id)
)::text
)SQL";

// A request routed to a workflow is as far along as its run.
void FollowWorkflowRun(pqxx::transaction_base& txn, json& out) {
  const auto& result = out["result"];
  if (!result.is_object() || !result.contains("workflow_run")) return;
  const auto run_id = result["workflow_run"].value("run_id", int64_t{0});
  const auto rows = txn.exec_params(
      "SELECT workflow_id, status, reason FROM workflow_runs WHERE id = $1", run_id);
  if (rows.empty()) return;
  const auto workflow_id = rows[0][0].as<std::string>();
  const auto status = rows[0][1].as<std::string>();
  const auto reason = rows[0][2].is_null() ? std::string() : rows[0][2].as<std::string>();
  out["workflow"] = {{"run_id", run_id}, {"workflow_id", workflow_id}, {"status", status}, {"reason", reason}};
  if (status == "running" || status == "waiting") {
    out["status"] = "running";
  } else if (status != "succeeded") {
    out["status"] = "failed";
    out["error"] = "workflow/" + workflow_id + ": " + status + (reason.empty() ? "" : " (" + reason + ")");
  }
}

}  // namespace

RequestSummary Summarize(const std::vector<NodeState>& nodes) {
  RequestSummary out;
  if (nodes.empty()) return {"queued", 0, ""};
  bool active = false;
  const NodeState* failed = nullptr;
  const NodeState* last_leaf = nullptr;
  for (const auto& n : nodes) {
    if (n.status == "queued" || n.status == "running") active = true;
    if ((n.status == "failed" || n.status == "dead" || n.status == "cancelled") && failed == nullptr) {
      failed = &n;
    }
    if (!n.has_children && (last_leaf == nullptr || n.id > last_leaf->id)) last_leaf = &n;
  }
  if (nodes.size() == 1 && nodes[0].status == "queued") return {"queued", 0, ""};
  if (active) return {"running", 0, ""};
  if (failed != nullptr) {
    return {"failed", 0, failed->route + ": " + (failed->last_error.empty() ? failed->status : failed->last_error)};
  }
  return {"done", last_leaf == nullptr ? 0 : last_leaf->id, ""};
}

std::optional<std::string> RequestViewJson(pqxx::transaction_base& txn, int64_t id,
                                           const std::optional<std::string>& tenant) {
  const auto root = txn.exec_params("SELECT tenant FROM agent_messages WHERE id = $1", id);
  if (root.empty()) return std::nullopt;
  const auto root_tenant = root[0][0].as<std::string>();
  if (tenant && *tenant != root_tenant) return std::nullopt;
  json tree = json::parse(txn.exec_params(kRequestTree, id)[0][0].as<std::string>());
  std::vector<NodeState> nodes;
  for (const auto& m : tree["messages"]) {
    NodeState n;
    n.id = m["id"].get<int64_t>();
    n.parent_id = m["parent_id"].is_null() ? 0 : m["parent_id"].get<int64_t>();
    n.route = m["service"].get<std::string>() + "/" + m["role"].get<std::string>();
    n.status = m["status"].get<std::string>();
    n.last_error = m["last_error"].is_null() ? "" : m["last_error"].get<std::string>();
    n.has_children = m["has_children"].get<bool>();
    nodes.push_back(std::move(n));
  }
  const auto summary = Summarize(nodes);
  json out = {{"id", id}, {"tenant", root_tenant}, {"status", summary.status},
              {"result", nullptr}, {"error", nullptr}};
  if (summary.status == "done") {
    for (const auto& m : tree["messages"]) {
      if (m["id"].get<int64_t>() == summary.result_from) {
        out["result"] = m["result"];
        out["result_snippet"] = m["result_snippet"];
        out["result_from"] = {{"id", summary.result_from},
                              {"route", m["service"].get<std::string>() + "/" + m["role"].get<std::string>()}};
      }
    }
    FollowWorkflowRun(txn, out);
  } else if (summary.status == "failed") {
    out["error"] = summary.error;
  }
  out["messages"] = std::move(tree["messages"]);
  out["trail"] = std::move(tree["trail"]);
  return out.dump();
}

}  // namespace cogo::orchestrator
