#include "cogo/db/connection.h"

#include <libpq-fe.h>
#include <pqxx/nontransaction>

#include <cctype>
#include <cstdlib>
#include <set>

namespace cogo::db {

std::unique_ptr<pqxx::connection> Connect(const std::string& url,
                                          std::string_view application_name,
                                          std::string_view session_setup) {
  auto conn = std::make_unique<pqxx::connection>(WithConnectionDefaults(url));
  // libpqxx 6 would reopen a broken connection on its next use, silently and without the
  // session setup below (and inside pqxx::pipeline's replay of a failed message). Every cogo
  // caller drops a broken connection and opens a fresh one (db/reconnect.h), so a broken one
  // must stay broken. The call is deprecated in libpqxx 6, which has no other way to say it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  pqxx::nontransaction txn(*conn);
  std::string setup = "SET application_name = " + txn.quote(std::string(application_name));
  if (!session_setup.empty()) setup.append("; ").append(session_setup);
  txn.exec(setup);
  return conn;
}

std::string WithConnectionDefaults(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);  // its text may quote the URL, password and all; libpq says it again on open
    return url;
  }
  std::string out;
  const auto append = [&out](const char* keyword, const char* value) {
    if (!out.empty()) out += ' ';
    out.append(keyword).append("='");
    for (const char* c = value; *c != '\0'; ++c) {
      if (*c == '\'' || *c == '\\') out += '\\';
      out += *c;
    }
    out += '\'';
  };
  std::set<std::string_view> given;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    append(o->keyword, o->val);
    given.insert(o->keyword);
  }
  // libpq reads a service file only for what the string leaves unset: defaults added here
  // would override its settings.
  const bool service = given.count("service") != 0 || std::getenv("PGSERVICE") != nullptr;
  for (const auto& [keyword, value] : kConnectionDefaults) {
    if (!service && given.count(keyword) == 0) append(keyword, value);
  }
  PQconninfoFree(options);  // after the last look at `given`, which points into it
  return service ? url : out;
}

std::string RedactPasswords(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    // userinfo: "://" user ":" password "@", the password ending at the last '@' before the
    // host (a password may contain '@' only percent-encoded, but be generous).
    if (text.compare(i, 3, "://") == 0) {
      const size_t start = i + 3;
      const size_t end = text.find_first_of(" \t\n\"'/?#", start);
      const size_t at = text.rfind('@', end == std::string_view::npos ? text.size() : end);
      const size_t colon = text.find(':', start);
      if (at != std::string_view::npos && at >= start && colon != std::string_view::npos && colon < at) {
        out.append(text.substr(i, colon + 1 - i)).append("***");
        i = at;
        continue;
      }
    }
    // keyword or query parameter: password=VALUE
    constexpr std::string_view kKey = "password=";
    if (text.size() - i >= kKey.size() && (i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_'))) {
      bool match = true;
      for (size_t k = 0; k < kKey.size() && match; ++k) {
        match = std::tolower(static_cast<unsigned char>(text[i + k])) == kKey[k];
      }
      if (match) {
        out.append(text.substr(i, kKey.size())).append("***");
        i += kKey.size();
        if (i < text.size() && text[i] == '\'') {  // a quoted keyword value
          const size_t close = text.find('\'', i + 1);
          i = close == std::string_view::npos ? text.size() : close + 1;
        } else {
          while (i < text.size() && std::string_view(" \t\n\"&").find(text[i]) == std::string_view::npos) ++i;
        }
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

}  // namespace cogo::db
