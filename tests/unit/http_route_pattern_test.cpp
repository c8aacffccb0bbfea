#include "http/route_pattern.h"

#include <gtest/gtest.h>

#include <regex>

namespace cogo::http {
namespace {

TEST(RoutePattern, CompilesCapturesAndEscapesLiterals) {
  struct Case {
    const char* pattern;
    const char* regex;
    std::vector<std::string> params;
  };
  const std::vector<Case> cases = {
      {"/healthz", "/healthz", {}},
      {"/openapi.json", "/openapi\\.json", {}},
      {"/api/messages/{id}", "/api/messages/([^/]+)", {"id"}},
      {"/api/workflows/{workflow}/runs/{run_id}", "/api/workflows/([^/]+)/runs/([^/]+)", {"workflow", "run_id"}},
      {"/v1/a+b(c)", "/v1/a\\+b\\(c\\)", {}},
  };
  for (const auto& c : cases) {
    const auto compiled = CompileRoutePattern(c.pattern);
    ASSERT_TRUE(compiled) << c.pattern;
    EXPECT_EQ(compiled->regex, c.regex) << c.pattern;
    EXPECT_EQ(compiled->params, c.params) << c.pattern;
  }
}

TEST(RoutePattern, RefusesMalformedPatterns) {
  for (const char* bad : {"", "healthz", "/a/{id", "/a/id}", "/a/{}", "/a/{Id}", "/a/{id}{x}", "/a/x{id}",
                          "/a/{id}x", "/a/{id}/b/{id}", "/a/{a-b}"}) {
    EXPECT_FALSE(CompileRoutePattern(bad)) << bad;
  }
}

TEST(RoutePattern, CapturesMatchOneNonEmptySegment) {
  const std::regex re(CompileRoutePattern("/api/messages/{id}")->regex);
  EXPECT_TRUE(std::regex_match("/api/messages/42", re));
  EXPECT_FALSE(std::regex_match("/api/messages/", re));
  EXPECT_FALSE(std::regex_match("/api/messages/4/2", re));
  EXPECT_FALSE(std::regex_match("/api/messagesX42", re));
}

TEST(RequestId, EchoesOnlyShortSafeIds) {
  EXPECT_TRUE(ValidRequestId("abc-123_x.y:z"));
  EXPECT_TRUE(ValidRequestId(std::string(128, 'a')));
  EXPECT_FALSE(ValidRequestId(""));
  EXPECT_FALSE(ValidRequestId(std::string(129, 'a')));
  EXPECT_FALSE(ValidRequestId("a b"));
  EXPECT_FALSE(ValidRequestId("a\nb"));
  EXPECT_FALSE(ValidRequestId("a\"b"));
}

}  // namespace
}  // namespace cogo::http
