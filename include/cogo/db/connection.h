// Opening a connection (db/reconnect.h holds the rule for losing one).
// Functions are thread-safe; a pqxx::connection itself must be used by one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <pqxx/connection>

namespace cogo::db {

// Opens a connection (the URL with the defaults of WithConnectionDefaults) and tags it with
// `application_name` so pg_stat_activity shows who is who. `session_setup` (SQL, e.g.
// "SET synchronous_commit = off") runs in the same round trip.
[[nodiscard]] std::unique_ptr<pqxx::connection> Connect(const std::string& url,
                                                         std::string_view application_name,
                                                         std::string_view session_setup = {});

// `url` (a URI or a keyword=value string, as libpq takes them) as a keyword=value string with
// TCP keepalives and a TCP user timeout wherever `url` sets none (kConnectionDefaults). Without
// them a connection whose server or network vanished without a reset (a failover, a dropped
// NAT entry, a host that lost power) is only given up after the kernel's 2-hour keepalive: a
// worker waiting on its claim or LISTEN connection would wait that long. A `url` libpq cannot
// parse is returned as it is, so that opening it fails with libpq's own message; so is one that
// names a service (or with PGSERVICE set), whose file libpq reads only for what `url` leaves
// unset.
[[nodiscard]] std::string WithConnectionDefaults(const std::string& url);

// Given up after about a minute of silence: probes after 30 s idle, 3 unanswered 10 s apart;
// data unacknowledged for 60 s.
inline constexpr std::pair<const char*, const char*> kConnectionDefaults[] = {
    {"keepalives_idle", "30"},
    {"keepalives_interval", "10"},
    {"keepalives_count", "3"},
    {"tcp_user_timeout", "60000"},
};

// The session settings of a connection that runs the bus's statements over and over (a worker's
// claim and flush loops, the executor's admissions). They are primary-key lookups and ordered
// index scans; a plan made while agent_messages was nearly empty (a fresh database) scans the
// whole table instead, and the cached plan keeps doing so as the table grows, until the next
// ANALYZE. Such a session plans each statement once, generically, without sequential scans
// where an index can serve: with enable_seqscan off alone, the plan cache would keep
// re-planning (custom plans), which costs a claim more than its execution.
inline constexpr const char* kPreferIndexScans =
    "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan";

// `text` with every connection password masked as "***": the password of a URL's userinfo
// (postgresql://user:PASSWORD@host) and the value of a `password=` keyword or query parameter.
// For anything that prints configuration (--print-config) or a connection string.
[[nodiscard]] std::string RedactPasswords(std::string_view text);

// Formats integers as a PostgreSQL array literal, e.g. {1,2,3}.
template <typename Range>
[[nodiscard]] std::string IntArrayLiteral(const Range& values) {
  std::string out = "{";
  for (const auto& v : values) {
    if (out.size() > 1) out += ',';
    out += std::to_string(v);
  }
  out += '}';
  return out;
}

}  // namespace cogo::db
