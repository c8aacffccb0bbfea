#include "cogo/buildtest/test_output.h"

#include <regex>
#include <string>

namespace cogo::buildtest {
namespace {

constexpr size_t kMaxFailures = 50;  // report.json lists at most this many

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string line(text.substr(start, nl - start));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(std::move(line));
    start = nl + 1;
  }
  return out;
}

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t*");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t*");
  return s.substr(b, e - b + 1);
}

void AddFailure(TestCounts& counts, std::string name, std::string message) {
  ++counts.failed;
  if (counts.failures.size() < kMaxFailures) counts.failures.push_back({std::move(name), std::move(message)});
}

std::string Unescape(std::string s) {
  static const std::pair<const char*, const char*> kEntities[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}};
  for (const auto& [from, to] : kEntities) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + 1)) s.replace(at, std::string(from).size(), to);
  }
  return s;
}

std::string Attribute(const std::string& tag, const std::string& name) {
  const std::regex re("\\s" + name + "\\s*=\\s*\"([^\"]*)\"");
  std::smatch m;
  return std::regex_search(tag, m, re) ? Unescape(m[1].str()) : std::string();
}

}  // namespace

std::optional<TestCounts> ParseCtestOutput(std::string_view output) {
  static const std::regex kTestLine(R"(Test\s+#\d+:\s+(\S+)\s+\.*\s*(.*?)\s+[0-9.]+\s+sec\s*$)");
  static const std::regex kSummary(R"((\d+)% tests passed, (\d+) tests? failed out of (\d+))");
  TestCounts counts;
  counts.runner = "ctest";
  bool seen = false;
  std::optional<std::smatch> summary;
  for (const auto& line : Lines(output)) {
    std::smatch m;
    if (std::regex_search(line, m, kTestLine)) {
      seen = true;
      const std::string name = m[1].str();
      const std::string status = Trim(m[2].str());
      if (status == "Passed") {
        ++counts.passed;
      } else if (status.find("Skipped") != std::string::npos || status.find("Not Run") != std::string::npos ||
                 status.find("Disabled") != std::string::npos) {
        ++counts.skipped;
      } else {
        AddFailure(counts, name, status.empty() ? "Failed" : status);
      }
    } else if (std::regex_search(line, m, kSummary)) {
      summary = m;
    }
  }
  if (!seen && summary) {
    const int failed = std::stoi((*summary)[2].str());
    const int total = std::stoi((*summary)[3].str());
    counts.failed = failed;
    counts.passed = total - failed;
    seen = true;
  }
  if (!seen) return std::nullopt;
  return counts;
}

std::optional<TestCounts> ParsePytestOutput(std::string_view output) {
  static const std::regex kSummary(R"(^=+ (.*\d+ (passed|failed|skipped|error|errors|xfailed|xpassed|deselected).*) in [0-9.]+s.*=+$)");
  static const std::regex kCount(R"((\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?))");
  static const std::regex kFailureLine(R"(^(FAILED|ERROR) (\S+)(?: - (.*))?$)");
  TestCounts counts;
  counts.runner = "pytest";
  std::optional<TestCounts> found;
  std::vector<TestFailure> failures;
  for (const auto& line : Lines(output)) {
    std::smatch m;
    if (std::regex_search(line, m, kFailureLine)) {
      if (failures.size() < kMaxFailures) failures.push_back({m[2].str(), m[3].matched ? m[3].str() : m[1].str()});
      continue;
    }
    if (!std::regex_search(line, m, kSummary)) continue;
    TestCounts c;
    c.runner = "pytest";
    const std::string body = m[1].str();
    for (std::sregex_iterator it(body.begin(), body.end(), kCount), end; it != end; ++it) {
      const int n = std::stoi((*it)[1].str());
      const std::string kind = (*it)[2].str();
      if (kind == "passed" || kind == "xpassed") c.passed += n;
      if (kind == "failed" || kind == "error" || kind == "errors") c.failed += n;
      if (kind == "skipped" || kind == "xfailed") c.skipped += n;
    }
    found = c;  // the last summary line wins
  }
  if (!found) return std::nullopt;
  found->failures = std::move(failures);
  return found;
}

std::optional<TestCounts> ParseJUnitXml(std::string_view xml) {
  TestCounts counts;
  counts.runner = "junit";
  bool seen = false;
  const std::string text(xml);
  for (size_t at = text.find("<testcase"); at != std::string::npos; at = text.find("<testcase", at + 1)) {
    const size_t tag_end = text.find('>', at);
    if (tag_end == std::string::npos) break;
    seen = true;
    const std::string tag = text.substr(at, tag_end - at + 1);
    std::string body;
    if (tag.size() < 2 || tag[tag.size() - 2] != '/') {
      const size_t close = text.find("</testcase>", tag_end);
      body = text.substr(tag_end + 1, close == std::string::npos ? std::string::npos : close - tag_end - 1);
    }
    std::string name = Attribute(tag, "name");
    const std::string classname = Attribute(tag, "classname");
    if (!classname.empty()) name = classname + "." + name;
    const auto child = [&](const char* element) { return body.find(std::string("<") + element) != std::string::npos; };
    if (child("failure") || child("error")) {
      const size_t f = body.find(child("failure") ? "<failure" : "<error");
      const std::string ftag = body.substr(f, body.find('>', f) - f + 1);
      std::string message = Attribute(ftag, "message");
      AddFailure(counts, name, message.empty() ? "failed" : message);
    } else if (child("skipped")) {
      ++counts.skipped;
    } else {
      ++counts.passed;
    }
  }
  if (!seen) return std::nullopt;
  return counts;
}

std::optional<TestCounts> ParseTestOutput(std::string_view output) {
  if (auto c = ParseCtestOutput(output)) return c;
  return ParsePytestOutput(output);
}

}  // namespace cogo::buildtest
