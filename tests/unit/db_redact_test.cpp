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

}  // namespace
}  // namespace cogo::db
