#include <optional>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "cogo/db/connection.h"

namespace cogo::db {
namespace {

TEST(RedactPasswords, MasksUrlUserinfoAndPasswordKeywords) {
  struct Case {
    const char* text;
    const char* redacted;
  };
  const std::vector<Case> cases = {
      {"postgresql://postgres@127.0.0.1:55432/cogo", "postgresql://postgres@127.0.0.1:55432/cogo"},
      {"postgresql://cogo:s3cret@db:5432/cogo", "postgresql://cogo:***@db:5432/cogo"},
      {"database-url=\"postgresql://cogo:p@ss@db/cogo\"\nport=8781", "database-url=\"postgresql://cogo:***@db/cogo\"\nport=8781"},
      {"postgresql://db/cogo?user=cogo&password=s3cret&sslmode=require",
       "postgresql://db/cogo?user=cogo&password=***&sslmode=require"},
      {"host=db user=cogo password=s3cret dbname=cogo", "host=db user=cogo password=*** dbname=cogo"},
      {"host=db PASSWORD='two words' dbname=cogo", "host=db PASSWORD=*** dbname=cogo"},
      {"http://127.0.0.1:8781/api", "http://127.0.0.1:8781/api"},
      {"old_password=keep", "old_password=keep"},
      {"", ""},
  };
  for (const auto& c : cases) EXPECT_EQ(RedactPasswords(c.text), c.redacted) << c.text;
}

TEST(TextArrayLiteral, QuotesEveryElementAndEscapesQuotesAndBackslashes) {
  using Elements = std::vector<std::optional<std::string_view>>;
  struct Case {
    Elements values;
    const char* literal;
  };
  const std::vector<Case> cases = {
      {{}, "{}"},
      {{"a", std::nullopt, ""}, R"({"a",NULL,""})"},
      {{"NULL", "{x,y}", R"(say "hi")", R"(a\b)"}, R"({"NULL","{x,y}","say \"hi\"","a\\b"})"},
      {{"it's \u00e9"}, "{\"it's \u00e9\"}"},
  };
  for (const auto& c : cases) EXPECT_EQ(TextArrayLiteral(c.values), c.literal) << c.literal;
}

}  // namespace
}  // namespace cogo::db
