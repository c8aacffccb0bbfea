#include "http/route_pattern.h"

#include <algorithm>

namespace cogo::http {
namespace {

bool NameChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

// Characters std::regex (ECMAScript) treats specially; escaped in literal pattern text.
bool RegexSpecial(char c) { return std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos; }

}  // namespace

std::optional<RoutePattern> CompileRoutePattern(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') return std::nullopt;
  RoutePattern out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '}') return std::nullopt;
    if (c != '{') {
      if (RegexSpecial(c)) out.regex.push_back('\\');
      out.regex.push_back(c);
      continue;
    }
    const size_t close = pattern.find('}', i);
    if (close == std::string_view::npos || pattern[i - 1] != '/') return std::nullopt;
    const std::string name(pattern.substr(i + 1, close - i - 1));
    if (name.empty() || name.size() > 32 || !std::all_of(name.begin(), name.end(), NameChar)) return std::nullopt;
    if (close + 1 < pattern.size() && pattern[close + 1] != '/') return std::nullopt;
    if (std::find(out.params.begin(), out.params.end(), name) != out.params.end()) return std::nullopt;
    out.params.push_back(name);
    out.regex += "([^/]+)";
    i = close;
  }
  return out;
}

bool ValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
  });
}

}  // namespace cogo::http
