#include "metrics/queries.h"

#include <pqxx/result>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>
#include <tuple>

#include "cogo/artifacts/store.h"
#include "cogo/metrics/latency_histogram.h"
#include "cogo/metrics/window.h"
#include "metrics/statements.h"

namespace cogo::metrics {
namespace {

using nlohmann::json;

double Seconds(std::chrono::seconds s) { return static_cast<double>(s.count()); }

// A float8[] as PostgreSQL prints it: "{0.5,1.25,NULL}". NULL entries become JSON null.
json FloatArray(const pqxx::field& field) {
  json out = json::array();
  if (field.is_null()) return out;
  std::string text = field.c_str();
  if (text.size() < 2) return out;
  text = text.substr(1, text.size() - 2);
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    if (item == "NULL" || item.empty()) out.push_back(nullptr);
    else out.push_back(std::strtod(item.c_str(), nullptr));
    start = end + 1;
  }
  return out;
}

json Quantiles(const pqxx::field& field, const std::vector<const char*>& names) {
  const json values = FloatArray(field);
  json out = json::object();
  for (size_t i = 0; i < names.size(); ++i) out[names[i]] = i < values.size() ? values[i] : json(nullptr);
  return out;
}

json Number(const pqxx::field& field) { return field.is_null() ? json(nullptr) : json(field.as<double>()); }

// A result_url that names a file of the artifact store: "<taskId>/<name>" or
// "<taskId>/<part>/<name>", no "..", nothing a URL would need escaping for.
bool IsStoredArtifact(const std::string& url) {
  const auto slash = url.find('/');
  if (slash == std::string::npos || !artifacts::ValidTaskId(url.substr(0, slash))) return false;
  if (url.find("..") != std::string::npos || std::count(url.begin(), url.end(), '/') > 2) return false;
  return std::all_of(url.begin(), url.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' || c == '-';
  });
}

double Ratio(int64_t part, int64_t whole) { return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0.0; }

}  // namespace

namespace {

json LatencyEntry(int64_t messages, json wait, json handler) {
  return {{"messages", messages}, {"wait_seconds", std::move(wait)}, {"handler_seconds", std::move(handler)}};
}

// Sorts one row of the latency statements into `total`, `routes` or `route_tenants` by its
// grouping level (0 = route and tenant, 1 = route, 7 = all).
void PlaceLatency(int level, const std::string& service, const std::string& role, const std::string& tenant,
                  json entry, json& total, json& routes, json& by_tenant) {
  if (level == 0) {
    entry["service"] = service;
    entry["role"] = role;
    entry["tenant"] = tenant;
    by_tenant.push_back(std::move(entry));
  } else if (level == 1) {
    entry["service"] = service;
    entry["role"] = role;
    routes.push_back(std::move(entry));
  } else {
    total = std::move(entry);
  }
}

// What the hourly rollup holds for one key: the count, the sums and both histograms.
struct RolledLatency {
  int64_t messages = 0;
  double wait_sum = 0, handler_sum = 0;
  LatencyHistogram wait, handler;
  void Merge(const RolledLatency& o) {
    messages += o.messages;
    wait_sum += o.wait_sum;
    handler_sum += o.handler_sum;
    wait.Merge(o.wait);
    handler.Merge(o.handler);
  }
  [[nodiscard]] json ToJson() const {
    auto side = [&](const LatencyHistogram& h, double sum) {
      json out = json::object();
      for (const auto& [name, q] : {std::pair{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}}) {
        const auto v = h.Percentile(q);
        out[name] = v ? json(*v) : json(nullptr);
      }
      out["avg"] = messages > 0 ? json(sum / static_cast<double>(messages)) : json(nullptr);
      return out;
    };
    return LatencyEntry(messages, side(wait, wait_sum), side(handler, handler_sum));
  }
};

// The window's whole hours from bus_latency_hours, its edges from agent_messages, merged per
// route and tenant and summed up to routes and the total here.
void LatencyFromRollup(pqxx::transaction_base& txn, std::chrono::seconds window, const Tenant& tenant,
                       double rolled_from, double rolled_to, json& total, json& routes, json& by_tenant) {
  std::map<std::tuple<std::string, std::string, std::string>, RolledLatency> keys;
  for (const auto& row : txn.exec_params(sql::kLatencyFromRollup, Seconds(window), tenant, rolled_from, rolled_to)) {
    auto& k = keys[{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>()}];
    const int kind = row[3].as<int>();
    const auto n = row[5].as<int64_t>();
    if (kind == 2) {
      k.messages += n;
      k.wait_sum += row[6].as<double>();
      k.handler_sum += row[7].as<double>();
    } else {
      (kind == 0 ? k.wait : k.handler).Add(row[4].as<int>(), n);
    }
  }
  std::map<std::pair<std::string, std::string>, RolledLatency> by_route;
  RolledLatency all;
  for (const auto& [key, k] : keys) {
    const auto& [service, role, t] = key;
    PlaceLatency(0, service, role, t, k.ToJson(), total, routes, by_tenant);
    by_route[{service, role}].Merge(k);
    all.Merge(k);
  }
  for (const auto& [route, k] : by_route) PlaceLatency(1, route.first, route.second, "", k.ToJson(), total, routes, by_tenant);
  if (all.messages > 0) total = all.ToJson();
}

}  // namespace

json BusLatency(pqxx::transaction_base& txn, std::chrono::seconds window, const Tenant& tenant) {
  json routes = json::array();
  json by_tenant = json::array();
  json total = {{"messages", 0}, {"wait_seconds", {{"p50", nullptr}, {"p90", nullptr}, {"p99", nullptr}, {"avg", nullptr}}},
                {"handler_seconds", {{"p50", nullptr}, {"p90", nullptr}, {"p99", nullptr}, {"avg", nullptr}}}};
  const auto span = txn.exec_params(sql::kLatencyRolledSpan, Seconds(window));
  if (!span.empty()) {
    const double from = span[0][0].as<double>();
    const double to = span[0][1].as<double>();
    LatencyFromRollup(txn, window, tenant, from, to, total, routes, by_tenant);
    return {{"window", FormatSpan(window)}, {"percentiles", "histogram"},
            {"rolled_hours", static_cast<int64_t>((to - from) / 3600)}, {"total", total}, {"routes", routes},
            {"route_tenants", by_tenant}};
  }
  for (const auto& row : txn.exec_params(sql::kLatency, Seconds(window), tenant)) {
    json wait = Quantiles(row[5], {"p50", "p90", "p99"});
    wait["avg"] = Number(row[6]);
    json handler = Quantiles(row[7], {"p50", "p90", "p99"});
    handler["avg"] = Number(row[8]);
    PlaceLatency(row[0].as<int>(), row[1].is_null() ? "" : row[1].as<std::string>(),
                 row[2].is_null() ? "" : row[2].as<std::string>(), row[3].is_null() ? "" : row[3].as<std::string>(),
                 LatencyEntry(row[4].as<int64_t>(), wait, handler), total, routes, by_tenant);
  }
  return {{"window", FormatSpan(window)}, {"percentiles", "exact"}, {"rolled_hours", 0}, {"total", total},
          {"routes", routes}, {"route_tenants", by_tenant}};
}

json BusDepth(pqxx::transaction_base& txn, const Tenant& tenant) {
  json routes = json::array();
  int64_t queued = 0;
  int64_t running = 0;
  double lag = 0;
  for (const auto& row : txn.exec_params(sql::kDepth, tenant)) {
    const auto q = row[2].as<int64_t>();
    const auto r = row[5].as<int64_t>();
    queued += q;
    running += r;
    lag = std::max(lag, row[4].as<double>());
    routes.push_back({{"service", row[0].as<std::string>()}, {"role", row[1].as<std::string>()},
                      {"queued", q}, {"delayed", row[3].as<int64_t>()}, {"due", q - row[3].as<int64_t>()},
                      {"lag_seconds", row[4].as<double>()}, {"running", r},
                      {"oldest_running_seconds", row[6].as<double>()}});
  }
  return {{"total", {{"queued", queued}, {"running", running}, {"max_lag_seconds", lag}}}, {"routes", routes}};
}

json BusFailures(pqxx::transaction_base& txn, std::chrono::seconds window, std::chrono::seconds bucket,
                 const Tenant& tenant) {
  struct Counts {
    int64_t completed = 0, failed = 0, dead = 0, retried = 0;
  };
  auto add = [](Counts& c, const pqxx::row& row) {
    c.completed += row[3].as<int64_t>();
    c.failed += row[4].as<int64_t>();
    c.dead += row[5].as<int64_t>();
    c.retried += row[6].as<int64_t>();
  };
  auto to_json = [](const Counts& c) {
    const int64_t finished = c.completed + c.failed + c.dead;
    return json{{"completed", c.completed}, {"failed", c.failed}, {"dead_lettered", c.dead},
                {"retried", c.retried}, {"failure_rate", Ratio(c.failed + c.dead, finished)},
                {"attempt_failure_rate", Ratio(c.failed + c.dead + c.retried, finished + c.retried)}};
  };
  std::map<int64_t, Counts> by_bucket;
  std::map<std::pair<std::string, std::string>, Counts> by_route;
  std::map<std::pair<std::string, std::string>, std::map<int64_t, Counts>> route_buckets;
  Counts total;
  for (const auto& row : txn.exec_params(sql::kFailureTrend, Seconds(window), Seconds(bucket), tenant)) {
    const auto at = row[0].as<int64_t>();
    const std::pair<std::string, std::string> route{row[1].as<std::string>(), row[2].as<std::string>()};
    add(by_bucket[at], row);
    add(by_route[route], row);
    add(route_buckets[route][at], row);
    add(total, row);
  }
  json trend = json::array();
  for (const auto& [at, c] : by_bucket) {
    json point = to_json(c);
    point["bucket_start"] = at;
    trend.push_back(point);
  }
  json routes = json::array();
  for (const auto& [route, c] : by_route) {
    json entry = to_json(c);
    entry["service"] = route.first;
    entry["role"] = route.second;
    json points = json::array();
    for (const auto& [at, bc] : route_buckets[route]) {
      json point = to_json(bc);
      point["bucket_start"] = at;
      points.push_back(point);
    }
    entry["trend"] = points;
    routes.push_back(entry);
  }
  json reasons = json::array();
  for (const auto& row : txn.exec_params(sql::kFailureReasons, Seconds(window), tenant)) {
    reasons.push_back({{"service", row[0].as<std::string>()}, {"role", row[1].as<std::string>()},
                       {"event", row[2].as<std::string>()}, {"reason", row[3].as<std::string>()},
                       {"count", row[4].as<int64_t>()}});
  }
  return {{"window", FormatSpan(window)}, {"bucket", FormatSpan(bucket)}, {"bucket_seconds", bucket.count()},
          {"window_seconds", window.count()}, {"total", to_json(total)}, {"trend", trend}, {"routes", routes},
          {"reasons", reasons}};
}

json Spend(pqxx::transaction_base& txn, std::chrono::seconds window, const Tenant& tenant,
           const std::function<double(const std::string&)>& daily_cap) {
  json rows = json::array();
  std::map<std::string, json> tenants;
  double total_usd = 0;
  int64_t total_tokens = 0;
  for (const auto& row : txn.exec_params(sql::kSpend, Seconds(window), tenant)) {
    const auto name = row[1].as<std::string>();
    const auto tokens_in = row[5].as<int64_t>();
    const auto tokens_out = row[6].as<int64_t>();
    const auto usd = row[7].as<double>();
    rows.push_back({{"day", row[0].as<std::string>()}, {"tenant", name}, {"agent_id", row[2].as<std::string>()},
                    {"model", row[3].as<std::string>()}, {"records", row[4].as<int64_t>()},
                    {"input_tokens", tokens_in}, {"output_tokens", tokens_out}, {"cost_usd", usd}});
    auto& t = tenants[name];
    if (t.is_null()) t = {{"tenant", name}, {"cost_usd", 0.0}, {"tokens", 0}, {"spent_today_usd", 0.0}};
    t["cost_usd"] = t["cost_usd"].get<double>() + usd;
    t["tokens"] = t["tokens"].get<int64_t>() + tokens_in + tokens_out;
    total_usd += usd;
    total_tokens += tokens_in + tokens_out;
  }
  for (const auto& row : txn.exec_params(sql::kSpentToday, tenant)) {
    const auto name = row[0].as<std::string>();
    auto& t = tenants[name];
    if (t.is_null()) t = {{"tenant", name}, {"cost_usd", 0.0}, {"tokens", 0}};
    t["spent_today_usd"] = row[1].as<double>();
  }
  json per_tenant = json::array();
  for (auto& [name, t] : tenants) {
    if (daily_cap) {
      const double cap = daily_cap(name);
      t["daily_cap_usd"] = cap;
      t["cap_used"] = cap > 0 ? t["spent_today_usd"].get<double>() / cap : 0.0;
    } else {
      t["daily_cap_usd"] = nullptr;
    }
    per_tenant.push_back(t);
  }
  return {{"window", FormatSpan(window)}, {"total", {{"cost_usd", total_usd}, {"tokens", total_tokens}}},
          {"tenants", per_tenant}, {"rows", rows}};
}

json Decisions(pqxx::transaction_base& txn, std::chrono::seconds window, const Tenant& tenant) {
  json rows = json::array();
  json agents = json::array();
  json total;
  for (const auto& row : txn.exec_params(sql::kDecisions, Seconds(window), tenant)) {
    const auto decisions = row[4].as<int64_t>();
    const auto judged = row[5].as<int64_t>();
    const auto correct = row[6].as<int64_t>();
    const auto pending = row[7].as<int64_t>();
    json entry = {{"decisions", decisions}, {"judged", judged}, {"correct", correct}, {"wrong", judged - correct},
                  {"pending", pending}, {"unknown", decisions - judged - pending},
                  {"with_feedback", row[8].as<int64_t>()}, {"canary", row[9].as<int64_t>()},
                  {"quality", judged > 0 ? json(Ratio(correct, judged)) : json(nullptr)}};
    const int level = row[0].as<int>();
    if (level == 0) {
      entry["agent_id"] = row[1].as<std::string>();
      entry["version"] = row[2].as<std::string>();
      entry["intent"] = row[3].as<std::string>();
      rows.push_back(entry);
    } else if (level == 3) {
      entry["agent_id"] = row[1].as<std::string>();
      agents.push_back(entry);
    } else {
      total = entry;
    }
  }
  if (total.is_null()) {
    total = {{"decisions", 0}, {"judged", 0}, {"correct", 0}, {"wrong", 0}, {"pending", 0}, {"unknown", 0},
             {"with_feedback", 0}, {"canary", 0}, {"quality", nullptr}};
  }
  return {{"window", FormatSpan(window)},
          {"definition", "correct / judged (docs/decision-quality.md): correct when the execution reached done and "
                         "no feedback says otherwise; pending and unknown decisions are not judged"},
          {"total", total}, {"agents", agents}, {"rows", rows}};
}

bool WorkflowKnown(pqxx::transaction_base& txn, const std::string& workflow_id) {
  return txn.exec_params1(sql::kWorkflowKnown, workflow_id)[0].as<bool>();
}

json Workflows(pqxx::transaction_base& txn, std::chrono::seconds window, const Tenant& tenant,
               const std::optional<std::string>& workflow_id, int recent) {
  std::map<std::string, json> workflows;
  auto entry = [&](const std::string& id) -> json& {
    auto& w = workflows[id];
    if (w.is_null()) {
      w = {{"workflow_id", id}, {"runs", 0}, {"by_status", json::object()},
           {"duration_seconds", {{"p50", nullptr}, {"p90", nullptr}}},
           {"gates", {{"passed", 0}, {"failed", 0}, {"pass_rate", nullptr}}}};
    }
    return w;
  };
  for (const auto& row : txn.exec_params(sql::kWorkflowRuns, Seconds(window), tenant, workflow_id)) {
    auto& w = entry(row[0].as<std::string>());
    const auto n = row[2].as<int64_t>();
    w["by_status"][row[1].as<std::string>()] = n;
    w["runs"] = w["runs"].get<int64_t>() + n;
  }
  for (const auto& row : txn.exec_params(sql::kWorkflowDurations, Seconds(window), tenant, workflow_id)) {
    entry(row[0].as<std::string>())["duration_seconds"] = Quantiles(row[1], {"p50", "p90"});
  }
  for (const auto& row : txn.exec_params(sql::kWorkflowGates, Seconds(window), tenant, workflow_id)) {
    auto& w = entry(row[0].as<std::string>());
    const auto passed = row[1].as<int64_t>();
    const auto failed = row[2].as<int64_t>();
    w["gates"] = {{"passed", passed}, {"failed", failed},
                  {"pass_rate", passed + failed > 0 ? json(Ratio(passed, passed + failed)) : json(nullptr)}};
  }
  json list = json::array();
  for (auto& [id, w] : workflows) list.push_back(w);
  json runs = json::array();
  for (const auto& row : txn.exec_params(sql::kRecentRuns, tenant, workflow_id, recent)) {
    const auto task = row[8].as<std::string>();
    json artifacts = json::array();
    std::set<std::string> listed;
    // A file of the artifact store, served by /api/artifacts here and on the brain (tenant-scoped).
    auto stored = [&](const std::string& name, const std::string& relative) {
      if (!listed.insert(relative).second) return;
      artifacts.push_back({{"name", name}, {"path", "artifacts/" + relative}, {"api", "/api/artifacts/" + relative}});
    };
    if (!task.empty() && artifacts::ValidTaskId(task)) {
      // Where codegen and build-test write them (docs/codegen.md), and the task's whole listing
      // (logs, prompts, replies).
      stored("edits.json", task + "/edits.json");
      stored("report.json", task + "/build-test/report.json");
      stored("files", task);
    }
    for (const auto& link : json::parse(row[10].as<std::string>())) {
      const auto url = link.at("url").get<std::string>();
      const auto node = link.at("node").get<std::string>();
      if (url.starts_with("http://") || url.starts_with("https://")) {
        artifacts.push_back({{"name", node}, {"url", url}});
      } else if (IsStoredArtifact(url)) {
        stored(node, url);  // build-test's result_url: "<taskId>/build-test/report.json"
      }
    }
    runs.push_back({{"run_id", row[0].as<int64_t>()}, {"tenant", row[1].as<std::string>()},
                    {"workflow_id", row[2].as<std::string>()}, {"version", row[3].as<int>()},
                    {"status", row[4].as<std::string>()}, {"reason", row[5].as<std::string>()},
                    {"created_at", row[6].as<double>()}, {"finished_at", Number(row[7])},
                    {"duration_seconds", row[7].is_null() ? json(nullptr) : json(row[7].as<double>() - row[6].as<double>())},
                    {"task_id", task}, {"gates", json::parse(row[9].as<std::string>())}, {"artifacts", artifacts}});
  }
  return {{"window", FormatSpan(window)}, {"workflows", list}, {"recent_runs", runs}};
}

json Alerts(pqxx::transaction_base& txn, const std::vector<AlertRule>& rules, int transitions) {
  json active = json::array();
  for (const auto& row : txn.exec(sql::kActiveAlerts)) {
    active.push_back({{"rule", row[0].as<std::string>()}, {"key", row[1].as<std::string>()},
                      {"severity", row[2].as<std::string>()}, {"value", row[3].as<double>()},
                      {"threshold", row[4].as<double>()}, {"samples", row[5].as<int64_t>()},
                      {"since", row[6].as<double>()}, {"updated_at", row[7].as<double>()}});
  }
  json recent = json::array();
  for (const auto& row : txn.exec_params(sql::kRecentTransitions, transitions)) {
    recent.push_back({{"id", row[0].as<int64_t>()}, {"rule", row[1].as<std::string>()},
                      {"key", row[2].as<std::string>()}, {"state", row[3].as<std::string>()},
                      {"value", row[4].as<double>()}, {"threshold", row[5].as<double>()},
                      {"severity", row[6].as<std::string>()}, {"at", row[7].as<double>()},
                      {"notify", row[8].is_null() ? json(nullptr)
                                                  : json{{"workflow_id", row[8].as<std::string>()},
                                                         {"run_id", row[9].is_null() ? json(nullptr) : json(row[9].as<int64_t>())},
                                                         {"error", row[10].is_null() ? json(nullptr) : json(row[10].as<std::string>())},
                                                         {"done", row[11].as<bool>()}}}});
  }
  json configured = json::array();
  for (const auto& r : rules) {
    configured.push_back({{"name", r.name}, {"metric", MetricName(r.metric)}, {"op", OpSymbol(r.op)},
                          {"threshold", r.threshold}, {"window", FormatSpan(r.window)},
                          {"min_samples", r.min_samples}, {"severity", r.severity},
                          {"description", r.description}, {"notify", r.notify}});
  }
  return {{"active", active}, {"transitions", recent}, {"rules", configured}};
}

std::vector<Sample> ReadSamples(pqxx::transaction_base& txn, const AlertRule& rule) {
  std::vector<Sample> out;
  if (rule.metric == AlertMetric::decision_quality) {
    for (const auto& row : txn.exec_params(sql::kDecisions, Seconds(rule.window), Tenant{})) {
      if (row[0].as<int>() != 3) continue;  // per agent
      const auto judged = row[5].as<int64_t>();
      out.push_back({row[1].as<std::string>(), Ratio(row[6].as<int64_t>(), judged), judged});
    }
    return out;
  }
  const char* statement = sql::kSampleFailureRate;
  switch (rule.metric) {
    case AlertMetric::bus_failure_rate: statement = sql::kSampleFailureRate; break;
    case AlertMetric::bus_avg_wait_seconds: statement = sql::kSampleAvgWait; break;
    case AlertMetric::bus_lag_seconds: statement = sql::kSampleLag; break;
    case AlertMetric::bus_dead_letters: statement = sql::kSampleDeadLetters; break;
    case AlertMetric::decision_quality: break;
  }
  for (const auto& row : txn.exec_params(statement, Seconds(rule.window))) {
    out.push_back({row[0].as<std::string>(), row[1].as<double>(), row[2].as<int64_t>()});
  }
  return out;
}

}  // namespace cogo::metrics
