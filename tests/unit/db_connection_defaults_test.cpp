#include <libpq-fe.h>

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cogo/db/connection.h"

namespace cogo::db {
namespace {

// What libpq reads from a connection string: keyword -> value, the keywords it sets.
std::map<std::string, std::string> Parsed(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    std::string what = error != nullptr ? error : "?";
    PQfreemem(error);
    ADD_FAILURE() << "libpq cannot parse " << conninfo << ": " << what;
    return {};
  }
  std::map<std::string, std::string> out;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) out[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  return out;
}

TEST(WithConnectionDefaults, AddsKeepalivesWhereTheUrlSetsNoneAndKeepsEverythingElse) {
  using Settings = std::map<std::string, std::string>;
  const Settings defaults = {{"keepalives_idle", "30"},
                             {"keepalives_interval", "10"},
                             {"keepalives_count", "3"},
                             {"tcp_user_timeout", "60000"}};
  const auto with_defaults = [&](Settings given) {
    for (const auto& [k, v] : defaults) given.emplace(k, v);  // what is given wins
    return given;
  };
  struct Case {
    const char* url;
    Settings expected;
  };
  const std::vector<Case> cases = {
      {"postgresql://postgres@127.0.0.1:55432/cogo",
       with_defaults({{"user", "postgres"}, {"host", "127.0.0.1"}, {"port", "55432"}, {"dbname", "cogo"}})},
      {"postgresql://cogo:s3cret@db/cogo?keepalives_idle=5&sslmode=require",
       with_defaults({{"user", "cogo"}, {"password", "s3cret"}, {"host", "db"}, {"dbname", "cogo"},
                      {"keepalives_idle", "5"}, {"sslmode", "require"}})},
      {R"(host=db user=cogo password='it\'s a \\ pass' dbname=cogo tcp_user_timeout=0)",
       with_defaults({{"host", "db"}, {"user", "cogo"}, {"password", R"(it's a \ pass)"}, {"dbname", "cogo"},
                      {"tcp_user_timeout", "0"}})},
      {"", defaults},  // libpq's environment variables and defaults fill in the rest
  };
  for (const auto& c : cases) {
    const std::string out = WithConnectionDefaults(c.url);
    EXPECT_EQ(Parsed(out), c.expected) << c.url << " -> " << out;
  }
}

// A service file's settings would be overridden by the defaults: a URL naming one is left alone.
TEST(WithConnectionDefaults, LeavesAStringLibpqCannotParseOrThatNamesAServiceAsItIs) {
  for (const char* url : {"host=db no_such_option=1", "postgresql://db/cogo?no_such_option=1", "host='unterminated",
                          "service=cogo"}) {
    EXPECT_EQ(WithConnectionDefaults(url), url);
  }
}

}  // namespace
}  // namespace cogo::db
