// Opening connections and classifying database failures in one place.
// Functions are thread-safe; a pqxx::connection itself must be used by one thread at a time.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include <pqxx/connection>

namespace cogo::db {

// Opens a connection and tags it with `application_name` so pg_stat_activity shows who is who.
[[nodiscard]] std::unique_ptr<pqxx::connection> Connect(const std::string& url,
                                                         std::string_view application_name);

// True for failures worth retrying on a fresh connection or transaction: a broken connection,
// a serialization failure or deadlock, a server shutting down. False for "in doubt" commits
// (the transaction may have committed: retrying could double a write) and for everything else.
[[nodiscard]] bool IsTransient(const std::exception& error);

// True when a commit's outcome is unknown (the connection broke during COMMIT). Only callers
// whose retry is harmless after a commit that did happen may treat it as transient.
[[nodiscard]] bool IsInDoubt(const std::exception& error);

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
