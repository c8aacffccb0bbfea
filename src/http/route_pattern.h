// Private pure pieces of JsonService, table-tested in tests/unit/http_route_pattern_test.cpp:
// route patterns ("/api/messages/{id}") compiled to httplib's regexes, and which client request
// ids are echoed. Thread-safe: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cogo::http {

struct RoutePattern {
  std::string regex;                // for httplib: literal text escaped, {name} -> ([^/]+)
  std::vector<std::string> params;  // capture names in order
};

// nullopt unless the pattern starts with '/', every '{' closes, and each capture name is
// 1..32 of [a-z0-9_], unique in the pattern, and a whole path segment.
[[nodiscard]] std::optional<RoutePattern> CompileRoutePattern(std::string_view pattern);

// A client's X-Request-Id is echoed when it is 1..128 of [A-Za-z0-9._:-]: safe in a log line
// and a header. Anything else is replaced by a generated id.
[[nodiscard]] bool ValidRequestId(std::string_view id);

}  // namespace cogo::http
