#include "cogo/workflow/definition.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "cogo/base/digest.h"
#include "cogo/bus/keys.h"
#include "cogo/config/json_reader.h"
#include "cogo/ops/duration.h"
#include "cogo/workflow/engine.h"

namespace cogo::workflow {
namespace {

using config::JsonObject;
using config::JsonReason;
using config::JsonValue;
using nlohmann::json;

// Node ids and parameter names appear in JSON pointers and idempotency keys: keep them plain.
constexpr config::NameRule kNodeName{"node id", 64, true};
constexpr std::size_t kRouteNameBytes = 64;

json Raw(const JsonValue& value) { return json::parse(value.Dump()); }

std::chrono::milliseconds Duration(const JsonObject& o, std::string_view key) {
  const JsonValue value = o.Required(key);
  const auto parsed = ops::ParseDuration(value.AsString({false, 32}));
  if (!parsed || parsed->count() <= 0) {
    value.Fail(JsonReason::invalid_value, "a positive duration such as \"500ms\", \"30s\", \"10m\", \"2h\"");
  }
  return *parsed;
}

CompareOp ReadOp(const JsonValue& value) {
  static const std::map<std::string, CompareOp> kOps = {
      {"==", CompareOp::eq}, {"!=", CompareOp::ne}, {"<", CompareOp::lt},   {"<=", CompareOp::le},
      {">", CompareOp::gt},  {">=", CompareOp::ge}, {"exists", CompareOp::exists}, {"in", CompareOp::in}};
  const auto it = kOps.find(value.AsString({false, 8}));
  if (it == kOps.end()) value.Fail(JsonReason::invalid_value, "op must be one of == != < <= > >= exists in");
  return it->second;
}

std::vector<Assertion> ReadAssertions(const JsonObject& o, std::string_view key) {
  std::vector<Assertion> out;
  for (const JsonValue& item : o.Array(key, false)) {
    const JsonObject a = item.AsObject();
    Assertion assertion;
    const JsonValue path = a.Required("path");
    assertion.path = path.AsString({false, 512});
    try {
      (void)json::json_pointer(assertion.path);
    } catch (const json::exception&) {
      path.Fail(JsonReason::invalid_value, "path must be a JSON pointer such as /steps/test/output/failed");
    }
    assertion.op = ReadOp(a.Required("op"));
    if (assertion.op != CompareOp::exists) {
      const JsonValue value = a.Required("value");
      assertion.value = Raw(value);
      if (assertion.op == CompareOp::in && !assertion.value.is_array()) {
        value.Fail(JsonReason::wrong_type, "the value of op in must be an array");
      }
    }
    a.Finish();
    out.push_back(std::move(assertion));
  }
  return out;
}

std::string Edge(const JsonObject& o, std::string_view key, bool required) {
  if (!required && !o.Has(key)) return "";
  return o.Name(key, kNodeName);
}

Node ReadNode(const std::string& id, const JsonObject& o) {
  Node node;
  node.id = id;
  const JsonValue type = o.Required("type");
  const std::string type_name = type.AsString({false, 16});
  if (type_name == "publish" || type_name == "notify") {
    node.type = type_name == "publish" ? NodeType::publish : NodeType::notify;
    if (node.type == NodeType::publish) {
      node.service = bus::ReadRouteName(o, "service", kRouteNameBytes);
      node.role = bus::ReadRouteName(o, "role", kRouteNameBytes);
      // An object template, or one reference that renders to an object ("${/parameters}").
      node.payload = o.Has("payload") ? Raw(o.Required("payload")) : json::object();
      if (!node.payload.is_object() && !node.payload.is_string()) {
        o.FailAt("payload", JsonReason::wrong_type, "payload must be an object or a \"${/pointer}\" string");
      }
    } else {
      // Webhooks ride the bus like any step: a worker of (orchestrator, notify) delivers them.
      node.service = kEngineService;
      node.role = kNotifyRole;
      node.url = o.String("url", {false, 2048});
      if (node.url.rfind("http://", 0) != 0 && node.url.rfind("${", 0) != 0) {
        o.FailAt("url", JsonReason::invalid_value, "url must start with http:// (or be a \"${/pointer}\")");
      }
      node.payload = {{"url", node.url}, {"body", o.Has("body") ? Raw(o.Required("body")) : json::object()}};
    }
    node.max_attempts = static_cast<int>(o.IntOr("maxAttempts", 3, 1, 100));
    if (auto a = o.OptionalObject("assignment")) {
      AssignmentSpec spec;
      spec.agent_id = a->String("agentId", {false, 128});
      spec.version = a->String("version", {false, 64});
      spec.model = a->String("model", {false, 128});
      spec.ttl = std::chrono::milliseconds(a->Int("ttlMs", 1, 7LL * 24 * 3600 * 1000));
      if (a->Has("maxCostUsd")) spec.max_cost_usd = a->Double("maxCostUsd", config::DoubleRange::Positive());
      if (a->Has("maxTokens")) spec.max_tokens = a->Int("maxTokens", 1);
      a->Finish();
      node.assignment = spec;
    }
    node.next = Edge(o, "next", true);
  } else if (type_name == "wait") {
    node.type = NodeType::wait;
    const int kinds = int(o.Has("step")) + int(o.Has("event")) + int(o.Has("condition"));
    if (kinds != 1) o.value().Fail(JsonReason::invalid_value, "a wait names exactly one of step, event, condition");
    if (o.Has("step")) {
      node.wait_for = WaitFor::step;
      node.step = o.Name("step", kNodeName);
      node.on_fail = Edge(o, "onFail", false);
    } else if (o.Has("event")) {
      node.wait_for = WaitFor::event;
      node.event = o.Name("event", {"event name", 64, true});
      if (o.Has("lookback")) node.lookback = Duration(o, "lookback");
    } else {
      node.wait_for = WaitFor::condition;
      node.condition = ReadAssertions(o, "condition");
    }
    node.timeout = Duration(o, "timeout");  // every wait ends: missing_key without one
    node.next = Edge(o, "next", true);
    node.on_timeout = Edge(o, "onTimeout", false);
  } else if (type_name == "retry") {
    node.type = NodeType::retry;
    node.target = o.Name("target", kNodeName);
    node.max_retries = static_cast<int>(o.Int("maxRetries", 1, 100));
    if (auto b = o.OptionalObject("backoff")) {
      node.backoff.base = std::chrono::milliseconds(b->IntOr("baseMs", 1000, 1, 86400000));
      node.backoff.cap = std::chrono::milliseconds(b->IntOr("capMs", 300000, 1, 86400000));
      node.backoff.multiplier = b->DoubleOr("multiplier", 2.0, config::DoubleRange::Between(1.0, 10.0));
      node.backoff.jitter = b->DoubleOr("jitter", 0.2, config::DoubleRange::Between(0.0, 1.0));
      b->Finish();
    }
    node.on_exhausted = Edge(o, "onExhausted", false);
  } else if (type_name == "gate") {
    node.type = NodeType::gate;
    node.asserts = ReadAssertions(o, "assert");
    node.next = Edge(o, "onPass", true);
    node.on_fail = Edge(o, "onFail", false);
  } else if (type_name == "end") {
    node.type = NodeType::end;
    node.end_status = o.StringOr("status", "succeeded", {false, 16});
    if (node.end_status != "succeeded" && node.end_status != "failed") {
      o.FailAt("status", JsonReason::invalid_value, "status must be succeeded or failed");
    }
    node.end_reason = o.StringOr("reason", "", {true, 64});
  } else {
    type.Fail(JsonReason::invalid_value, "type must be publish, wait, retry, gate, notify or end");
  }
  node.description = o.StringOr("description", "", {true, 1024});
  o.Finish();
  return node;
}

std::vector<std::pair<const char*, std::string>> Edges(const Node& n) {
  std::vector<std::pair<const char*, std::string>> out;
  const auto add = [&](const char* key, const std::string& to) {
    if (!to.empty()) out.emplace_back(key, to);
  };
  add(n.type == NodeType::gate ? "onPass" : "next", n.next);
  add("onFail", n.on_fail);
  add("onTimeout", n.on_timeout);
  add("onExhausted", n.on_exhausted);
  add("target", n.target);
  return out;
}

// Graph rules the reader cannot see: edges to defined nodes, every node reachable from start,
// waits on steps that publish, and no cycle that a Retry does not bound.
void CheckGraph(const Definition& d) {
  const auto fail = [&](const std::string& path, const char* reason, const std::string& message) {
    throw DefinitionError{path, reason, message};
  };
  if (!d.nodes.count(d.start)) fail("start", "undefined_node", "start names no node");
  for (const auto& [id, node] : d.nodes) {
    for (const auto& [key, to] : Edges(node)) {
      if (!d.nodes.count(to)) fail("nodes." + id + "." + key, "undefined_node", "no node " + to);
    }
    if (node.type == NodeType::wait && node.wait_for == WaitFor::step) {
      if (!d.nodes.count(node.step)) fail("nodes." + id + ".step", "undefined_node", "no node " + node.step);
      const NodeType t = d.nodes.at(node.step).type;
      if (t != NodeType::publish && t != NodeType::notify) {
        fail("nodes." + id + ".step", "invalid_value", "a wait on a step names a publish or notify node");
      }
    }
    if (node.assignment && !node.assignment->max_cost_usd && !d.limits.max_cost_usd) {
      fail("nodes." + id + ".assignment.maxCostUsd", "missing_key",
           "an assignment needs a budget: maxCostUsd here or limits.maxCostUsd");
    }
    if (node.assignment && !node.assignment->max_tokens && !d.limits.max_tokens) {
      fail("nodes." + id + ".assignment.maxTokens", "missing_key",
           "an assignment needs a budget: maxTokens here or limits.maxTokens");
    }
  }
  std::set<std::string> seen;
  std::function<void(const std::string&)> reach = [&](const std::string& id) {
    if (!seen.insert(id).second) return;
    for (const auto& [key, to] : Edges(d.nodes.at(id))) reach(to);
  };
  reach(d.start);
  for (const auto& [id, node] : d.nodes) {
    if (!seen.count(id)) fail("nodes." + id, "unreachable_node", "no path from start reaches it");
  }
  // Depth-first search for a cycle, not following the re-entry edge of a Retry (it is bounded).
  std::map<std::string, int> color;  // 0 new, 1 on the stack, 2 done
  std::function<void(const std::string&)> visit = [&](const std::string& id) {
    color[id] = 1;
    for (const auto& [key, to] : Edges(d.nodes.at(id))) {
      if (std::string_view(key) == "target") continue;
      if (color[to] == 1) {
        fail("nodes." + id + "." + key, "unbounded_cycle",
             "this edge closes a loop that no retry node bounds");
      }
      if (color[to] == 0) visit(to);
    }
    color[id] = 2;
  };
  visit(d.start);  // every node is reachable from start: one search sees every cycle
}

ParameterSpec ReadParameter(const JsonObject& o) {
  ParameterSpec spec;
  const JsonValue type = o.Required("type");
  spec.type = type.AsString({false, 16});
  static const std::set<std::string> kTypes = {"string", "integer", "number", "boolean", "object", "array"};
  if (!kTypes.count(spec.type)) type.Fail(JsonReason::invalid_value, "type must be string, integer, number, boolean, object or array");
  spec.required = o.BoolOr("required", true);
  spec.max_length = static_cast<size_t>(o.IntOr("maxLength", 0, 0, 16 << 20));
  spec.description = o.StringOr("description", "", {true, 1024});
  o.Finish();
  return spec;
}

Definition Read(const std::string& id, const config::JsonDocument& doc) {
  const JsonObject root = doc.root().AsObject();
  Definition d;
  d.id = id;
  d.description = root.StringOr("description", "", {true, 4096});
  d.start = root.Name("start", kNodeName);
  if (root.Has("access")) {
    const std::string access = root.String("access");
    if (access != "any_token" && access != "service_role") {
      root.FailAt("access", JsonReason::invalid_value, "any_token or service_role");
    }
    d.service_role_only = access == "service_role";
  }
  if (auto p = root.OptionalObject("parameters")) {
    for (const auto& [name, value] : p->Entries()) {
      if (!config::IsValidName(name, kNodeName)) value.Fail(JsonReason::invalid_name, "parameter names are a-z A-Z 0-9 . _ -");
      d.parameters[name] = ReadParameter(value.AsObject());
    }
  }
  if (auto l = root.OptionalObject("limits")) {
    if (l->Has("maxCostUsd")) d.limits.max_cost_usd = l->Double("maxCostUsd", config::DoubleRange::Positive());
    if (l->Has("maxTokens")) d.limits.max_tokens = l->Int("maxTokens", 1);
    d.limits.max_activations = static_cast<int>(l->IntOr("maxActivations", 100, 1, 10000));
    l->Finish();
  }
  const JsonObject nodes = root.Object("nodes");
  for (const auto& [node_id, value] : nodes.Entries()) {
    if (!config::IsValidName(node_id, kNodeName)) value.Fail(JsonReason::invalid_name, "node ids are a-z A-Z 0-9 . _ -");
    d.nodes[node_id] = ReadNode(node_id, value.AsObject());
  }
  if (d.nodes.empty()) nodes.value().Fail(JsonReason::empty, "a workflow needs nodes");
  root.Finish();
  CheckGraph(d);
  d.canonical_json = json::parse(doc.root().Dump()).dump();
  d.digest = base::Sha256Hex(id + "\n" + d.canonical_json);
  return d;
}

bool HasType(const json& value, const std::string& type) {
  if (type == "string") return value.is_string();
  if (type == "integer") return value.is_number_integer();
  if (type == "number") return value.is_number();
  if (type == "boolean") return value.is_boolean();
  if (type == "object") return value.is_object();
  return value.is_array();
}

}  // namespace

const char* NodeTypeName(NodeType type) {
  switch (type) {
    case NodeType::publish: return "publish";
    case NodeType::wait: return "wait";
    case NodeType::retry: return "retry";
    case NodeType::gate: return "gate";
    case NodeType::notify: return "notify";
    case NodeType::end: return "end";
  }
  return "?";
}

const Node& Definition::node(const std::string& node_id) const { return nodes.at(node_id); }

std::string DefinitionError::ToString() const {
  return (path.empty() ? "(document)" : path) + ": " + reason + ": " + message;
}

std::variant<Definition, DefinitionError> ParseDefinition(const std::string& id, const std::string& text) {
  try {
    const auto doc = config::JsonDocument::Parse(text, {32, true});
    return Read(id, doc);
  } catch (const config::JsonError& e) {
    return DefinitionError{e.path(), std::string(config::ReasonName(e.reason())), e.message()};
  } catch (const DefinitionError& e) {
    return e;
  }
}

std::map<std::string, Definition> LoadDefinitions(const std::string& dir) {
  std::map<std::string, Definition> out;
  if (!std::filesystem::is_directory(dir)) throw std::runtime_error("no workflow directory " + dir);
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    const std::string id = entry.path().stem().string();
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = ParseDefinition(id, text.str());
    if (const auto* error = std::get_if<DefinitionError>(&parsed)) {
      throw std::runtime_error(entry.path().filename().string() + ": " + error->ToString());
    }
    out.emplace(id, std::get<Definition>(std::move(parsed)));
  }
  return out;
}

std::optional<DefinitionError> CheckParameters(const Definition& definition, const json& parameters) {
  if (!parameters.is_object()) return DefinitionError{"parameters", "wrong_type", "parameters must be an object"};
  for (const auto& [name, value] : parameters.items()) {
    const auto it = definition.parameters.find(name);
    if (it == definition.parameters.end()) {
      return DefinitionError{"parameters." + name, "unknown_key", "workflow " + definition.id + " takes no such parameter"};
    }
    if (!HasType(value, it->second.type)) {
      return DefinitionError{"parameters." + name, "wrong_type", "must be of type " + it->second.type};
    }
    if (it->second.max_length > 0 && value.is_string() && value.get_ref<const std::string&>().size() > it->second.max_length) {
      return DefinitionError{"parameters." + name, "out_of_range",
                             "longer than " + std::to_string(it->second.max_length) + " bytes"};
    }
  }
  for (const auto& [name, spec] : definition.parameters) {
    if (spec.required && !parameters.contains(name)) {
      return DefinitionError{"parameters." + name, "missing_key", "required by workflow " + definition.id};
    }
  }
  return std::nullopt;
}

}  // namespace cogo::workflow
