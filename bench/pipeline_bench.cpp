// cogo-pipeline-bench: the whole request path through the real daemons. Sends chat requests to
// a running edge at fixed rates (open loop: each sender thread keeps its schedule whatever the
// answers take), waits until every request's chat message has finished, then reads each
// request's three messages (orchestrator/decide -> orchestrator/execute -> gateway/chat) from
// the database and reports edge-accept -> result and where the time went, hop by hop.
//
// Times: the client's clock for "sent" and "accepted" (the 202 arrived); the database's clock
// for every message's created_at, started_at (claimed), finished_at (the completing
// transaction began) and its commit (pg_xact_commit_timestamp of the row's last update, the
// completion: the cluster must run with track_commit_timestamp = on). Client and server share
// a host, so both are the same wall clock. The result is the chat message's completion commit.
//
// A rate is sustained when every request was accepted and finished, the senders kept the rate
// (>= 95%), and accept -> result p99 stayed under --sustain-p99-ms. With --find-max, rates above
// the listed ones are tried (x1.5 each) until one is not sustained.
// Usage: bench/run-pipeline-bench.sh (starts the cluster and the daemons); the tokens and the
// publishable key come from COGO_BENCH_TOKEN (with --tenants N: N tokens, comma-separated, one
// per tenant in order) and COGO_PUBLISHABLE_KEY.
#include <CLI/CLI.hpp>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include "cogo/db/connection.h"
#include "stats.h"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using cogo::bench::Distribution;
using cogo::bench::DistributionText;
using cogo::bench::LoadAverage;

constexpr const char* kIngressPath = "/functions/v1/orchestrator-chat";

struct Config {
  std::string edge_url;
  std::string database_url;
  std::string tenant = "bench";
  int tenants = 1;  // > 1: requests go round-robin to tenants <tenant>-1 .. <tenant>-N
  std::vector<int> rates = {10, 100, 500};
  int duration_s = 10;
  bool find_max = false;
  int max_rate = 5000;
  double sustain_p99_ms = 1000;
  int settle_s = 60;  // how long to wait for the last results after sending
  int senders = 6;    // keep-alive connections; each holds one of the edge's HTTP threads
  std::string json_path;
};

struct Request {
  int64_t id = 0;
  double sent_s = 0;      // client clock, epoch seconds
  double accepted_s = 0;  // the 202 arrived
};

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The tenant of request i and its token: round-robin over --tenants.
struct Tenants {
  std::vector<std::string> names;
  std::vector<std::string> tokens;
  [[nodiscard]] size_t Of(int64_t i) const { return static_cast<size_t>(i) % names.size(); }
};

// Open loop at `rate` per second for `duration_s`: sender threads each own a keep-alive client
// and every k-th slot of one schedule (a sender that falls behind sends at once). Fewer senders
// than the edge has HTTP threads: an idle keep-alive connection holds its thread, and a
// connection beyond them waits for one to close. Returns the accepted requests; counts the
// refused.
std::vector<Request> Send(const Config& cfg, const Tenants& tenants, const std::string& apikey, int rate,
                          int64_t& refused, double& send_rate) {
  const int64_t n = static_cast<int64_t>(rate) * cfg.duration_s;
  // One sender per 16 requests/s, up to --senders: 7 at 100/s, as many as allowed at 1,000/s.
  const int threads = std::clamp(rate / 16 + 1, 1, cfg.senders);
  std::vector<std::vector<Request>> accepted(static_cast<size_t>(threads));
  std::atomic<int64_t> refused_n{0};
  std::mutex error_mu;
  std::string first_error;
  const auto start = std::chrono::steady_clock::now() + 50ms;
  const double start_wall = WallSeconds() + 0.05;
  {
    std::vector<std::jthread> senders;
    for (int t = 0; t < threads; ++t) {
      senders.emplace_back([&, t] {
        httplib::Client client(cfg.edge_url);
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);  // as curl does: headers and body leave at once
        client.set_connection_timeout(5s);
        client.set_read_timeout(30s);
        std::vector<httplib::Headers> headers;
        for (const auto& token : tenants.tokens) headers.push_back({{"Authorization", "Bearer " + token}, {"apikey", apikey}});
        for (int64_t i = t; i < n; i += threads) {
          std::this_thread::sleep_until(start + std::chrono::nanoseconds(i * 1'000'000'000 / rate));
          const size_t k = tenants.Of(i);
          const json body = {{"tenant", tenants.names[k]}, {"intent", "chat"},
                             {"payload", {{"message", fmt::format("pipeline bench request {}", i)}}}};
          Request r;
          r.sent_s = WallSeconds();
          const auto res = client.Post(kIngressPath, headers[k], body.dump(), "application/json");
          r.accepted_s = WallSeconds();
          if (res && res->status == 202) {
            r.id = json::parse(res->body).at("id").get<int64_t>();
            accepted[static_cast<size_t>(t)].push_back(r);
          } else {
            refused_n.fetch_add(1);
            std::lock_guard lock(error_mu);
            if (first_error.empty()) {
              first_error = res ? fmt::format("{} {}", res->status, res->body) : httplib::to_string(res.error());
            }
          }
        }
      });
    }
  }
  const double last_sent = WallSeconds();
  send_rate = static_cast<double>(n) / std::max(last_sent - start_wall, 1e-3);
  refused = refused_n.load();
  if (!first_error.empty()) fmt::print(stderr, "pipeline bench: first refused request: {}\n", first_error);
  std::vector<Request> all;
  for (auto& v : accepted) all.insert(all.end(), v.begin(), v.end());
  return all;
}

std::string IdArray(const std::vector<Request>& requests) {
  std::string out = "{";
  for (size_t i = 0; i < requests.size(); ++i) out += (i ? "," : "") + std::to_string(requests[i].id);
  return out + "}";
}

// Until every request's chat message (or the request itself) is final; false on timeout.
bool WaitFinished(pqxx::connection& conn, const std::string& ids, size_t n, int settle_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(settle_s);
  while (std::chrono::steady_clock::now() < deadline) {
    pqxx::read_transaction txn(conn);
    const auto finished = txn.exec_params1(R"SQL(
SELECT count(*) FROM agent_messages d
WHERE d.id = ANY ($1::bigint[])
  AND (d.status IN ('failed', 'dead', 'cancelled')
       OR EXISTS (SELECT 1 FROM agent_messages e JOIN agent_messages c ON c.parent_id = e.id
                  WHERE e.parent_id = d.id AND c.status IN ('done', 'failed', 'dead', 'cancelled'))
       OR EXISTS (SELECT 1 FROM agent_messages e WHERE e.parent_id = d.id
                  AND e.status IN ('failed', 'dead', 'cancelled'))))SQL",
                                              ids)[0]
                              .as<int64_t>();
    if (static_cast<size_t>(finished) == n) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// Each timestamp column of the three messages, as epoch seconds (database clock).
constexpr const char* kRequestTimes = R"SQL(
SELECT d.id, c.status = 'done',
       extract(epoch FROM d.created_at)::float8, extract(epoch FROM d.started_at)::float8,
       extract(epoch FROM d.finished_at)::float8, extract(epoch FROM pg_xact_commit_timestamp(d.xmin))::float8,
       extract(epoch FROM e.started_at)::float8, extract(epoch FROM e.finished_at)::float8,
       extract(epoch FROM pg_xact_commit_timestamp(e.xmin))::float8,
       extract(epoch FROM c.started_at)::float8, extract(epoch FROM c.finished_at)::float8,
       extract(epoch FROM pg_xact_commit_timestamp(c.xmin))::float8
FROM agent_messages d
JOIN agent_messages e ON e.parent_id = d.id
JOIN agent_messages c ON c.parent_id = e.id
WHERE d.id = ANY ($1::bigint[]))SQL";

// The hops, in order; each is the difference of two consecutive points of a request's path.
const std::vector<std::string> kHops = {
    "edge: sent -> decide inserted (HTTP, auth, insert began)",
    "decide wait: inserted -> claimed (edge commit, NOTIFY, claim)",
    "decide run: claimed -> completion began (handler, flusher batch)",
    "decide commit: completion began -> committed",
    "execute wait: committed -> claimed",
    "execute run: claimed -> completion began",
    "execute commit",
    "chat wait: committed -> claimed",
    "chat run: claimed -> completion began",
    "chat commit (the result)",
};

json RunRate(const Config& cfg, const Tenants& tenants, const std::string& apikey, int rate) {
  const double load = LoadAverage();
  int64_t refused = 0;
  double send_rate = 0;
  auto requests = Send(cfg, tenants, apikey, rate, refused, send_rate);
  const double last_accept = requests.empty() ? WallSeconds() : requests.back().accepted_s;
  auto conn = cogo::db::Connect(cfg.database_url, "cogo-pipeline-bench");
  const auto ids = IdArray(requests);
  const bool finished = WaitFinished(*conn, ids, requests.size(), cfg.settle_s);
  const double settled_after_s = WallSeconds() - last_accept;

  std::map<int64_t, const Request*> by_id;
  for (const auto& r : requests) by_id[r.id] = &r;
  std::vector<double> e2e, from_sent, edge_answer;
  std::vector<std::vector<double>> hops(kHops.size());
  int64_t not_done = static_cast<int64_t>(requests.size());
  {
    pqxx::read_transaction txn(*conn);
    for (const auto& row : txn.exec_params(kRequestTimes, ids)) {
      if (!row[1].as<bool>()) continue;
      --not_done;
      const Request& r = *by_id.at(row[0].as<int64_t>());
      std::vector<double> points = {r.sent_s};
      for (int c = 2; c < 12; ++c) points.push_back(row[c].as<double>());
      for (size_t h = 0; h < kHops.size(); ++h) hops[h].push_back((points[h + 1] - points[h]) * 1000);
      e2e.push_back((points.back() - r.accepted_s) * 1000);
      edge_answer.push_back((r.accepted_s - points[1]) * 1000);
      from_sent.push_back((points.back() - r.sent_s) * 1000);
    }
  }
  for (auto* v : {&e2e, &from_sent, &edge_answer}) std::sort(v->begin(), v->end());
  json hop_out = json::array();
  for (size_t h = 0; h < kHops.size(); ++h) {
    std::sort(hops[h].begin(), hops[h].end());
    hop_out.push_back({{"hop", kHops[h]}, {"ms", Distribution(hops[h])}});
  }
  const json accept_to_result = Distribution(e2e);
  const bool sustained = finished && refused == 0 && not_done == 0 &&
                         send_rate >= 0.95 * rate && accept_to_result["p99_ms"].get<double>() <= cfg.sustain_p99_ms;
  json out = {{"rate_per_s", rate},
              {"tenants", tenants.names.size()},
              {"duration_s", cfg.duration_s},
              {"requests", requests.size() + static_cast<size_t>(refused)},
              {"refused", refused},
              {"not_done", not_done},
              {"send_rate_per_s", send_rate},
              {"settled_after_s", settled_after_s},
              {"accept_to_result", accept_to_result},
              {"sent_to_result", Distribution(from_sent)},
              {"edge_inserted_to_accepted", Distribution(edge_answer)},
              {"hops", hop_out},
              {"sustained", sustained},
              {"loadavg_1m", load}};
  fmt::print("\nrate {}/s for {} s over {} tenant(s): {} requests (sent at {:.0f}/s), {} refused, {} not done; {}\n",
             rate, cfg.duration_s, tenants.names.size(), out["requests"].get<size_t>(), send_rate, refused, not_done,
             sustained ? "sustained" : "NOT sustained");
  fmt::print("  edge accept -> result   {}\n", DistributionText(accept_to_result));
  fmt::print("  sent -> result          {}\n", DistributionText(out["sent_to_result"]));
  fmt::print("  edge: insert began -> 202 received (commit, answer) {}\n",
             DistributionText(out["edge_inserted_to_accepted"]));
  for (const auto& h : hop_out) {
    fmt::print("    {:<64} p50 {:>7.2f}  p99 {:>7.2f} ms\n", h["hop"].get<std::string>(),
               h["ms"]["p50_ms"].get<double>(), h["ms"]["p99_ms"].get<double>());
  }
  fmt::print("  (load average {:.1f})\n", load);
  std::fflush(stdout);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"cogo-pipeline-bench: chat requests through the real edge at fixed rates; accept -> result per hop"};
  app.add_option("--edge", cfg.edge_url, "the edge, e.g. http://127.0.0.1:8780")->required();
  app.add_option("--database-url", cfg.database_url, "the stack's database")->required();
  app.add_option("--tenant", cfg.tenant)->capture_default_str();
  app.add_option("--tenants", cfg.tenants, "spread the requests round-robin over N tenants (<tenant>-1 .. <tenant>-N)")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--rates", cfg.rates, "requests per second, in turn")->delimiter(',')->capture_default_str();
  app.add_option("--duration", cfg.duration_s, "seconds per rate")->check(CLI::Range(1, 3600))->capture_default_str();
  app.add_flag("--find-max", cfg.find_max, "then raise the rate by 1.5x until it is not sustained");
  app.add_option("--max-rate", cfg.max_rate, "highest rate --find-max tries")->capture_default_str();
  app.add_option("--sustain-p99-ms", cfg.sustain_p99_ms, "accept -> result p99 a sustained rate stays under")
      ->capture_default_str();
  app.add_option("--settle", cfg.settle_s, "seconds to wait for the last results")->capture_default_str();
  app.add_option("--senders", cfg.senders, "sender threads (keep-alive connections), fewer than the edge's HTTP threads")
      ->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--json", cfg.json_path, "write the results here");
  CLI11_PARSE(app, argc, argv);
  const char* token = std::getenv("COGO_BENCH_TOKEN");
  const char* apikey = std::getenv("COGO_PUBLISHABLE_KEY");
  if (token == nullptr || apikey == nullptr) {
    fmt::print(stderr, "COGO_BENCH_TOKEN and COGO_PUBLISHABLE_KEY must be set\n");
    return 2;
  }
  Tenants tenants;
  tenants.tokens = CLI::detail::split(token, ',');
  if (static_cast<int>(tenants.tokens.size()) != cfg.tenants) {
    fmt::print(stderr, "COGO_BENCH_TOKEN holds {} token(s) for {} tenant(s)\n", tenants.tokens.size(), cfg.tenants);
    return 2;
  }
  for (int k = 1; k <= cfg.tenants; ++k) {
    tenants.names.push_back(cfg.tenants == 1 ? cfg.tenant : fmt::format("{}-{}", cfg.tenant, k));
  }
  try {
    json runs = json::array();
    int highest_sustained = 0;
    for (int rate : cfg.rates) {
      runs.push_back(RunRate(cfg, tenants, apikey, rate));
      if (runs.back()["sustained"].get<bool>()) highest_sustained = std::max(highest_sustained, rate);
    }
    if (cfg.find_max) {
      int rate = cfg.rates.empty() ? 100 : cfg.rates.back();
      while (runs.back()["sustained"].get<bool>() && rate < cfg.max_rate) {
        rate = std::min(cfg.max_rate, rate * 3 / 2);
        runs.push_back(RunRate(cfg, tenants, apikey, rate));
        if (runs.back()["sustained"].get<bool>()) highest_sustained = std::max(highest_sustained, rate);
      }
    }
    fmt::print("\nhighest sustained rate: {}/s (of those tried)\n", highest_sustained);
    if (!cfg.json_path.empty()) {
      std::ofstream(cfg.json_path) << json{{"runs", runs}, {"highest_sustained_per_s", highest_sustained},
                                           {"sustain_p99_ms", cfg.sustain_p99_ms}}
                                          .dump(2)
                                   << "\n";
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "pipeline bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
