// Test results read from what a test runner printed (ctest, pytest) or wrote (JUnit XML), for
// report.json. Counts come from the runner's own lines, never from a file the tests could have
// written for themselves, unless the caller chooses JUnit. Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cogo::buildtest {

struct TestFailure {
  std::string name;
  std::string message;  // the runner's status: "Failed", "Timeout", "Exception: SegFault", ...
  friend bool operator==(const TestFailure&, const TestFailure&) = default;
};

struct TestCounts {
  std::string runner;  // "ctest", "pytest", "junit"
  int passed = 0;
  int failed = 0;   // failures and errors
  int skipped = 0;  // skipped, disabled, not run, xfail
  std::vector<TestFailure> failures;
  friend bool operator==(const TestCounts&, const TestCounts&) = default;
};

// ctest's per-test lines ("1/3 Test #1: name ....   Passed  0.01 sec"); when none survived
// (output cut), its summary line ("67% tests passed, 1 tests failed out of 3").
[[nodiscard]] std::optional<TestCounts> ParseCtestOutput(std::string_view output);
// pytest's final summary line ("== 1 failed, 2 passed, 1 skipped in 0.1s ==") and its
// "FAILED node - message" / "ERROR node - message" lines.
[[nodiscard]] std::optional<TestCounts> ParsePytestOutput(std::string_view output);
// <testcase> elements with <failure>, <error> or <skipped> children.
[[nodiscard]] std::optional<TestCounts> ParseJUnitXml(std::string_view xml);
// The first runner whose output format is recognised: ctest, then pytest.
[[nodiscard]] std::optional<TestCounts> ParseTestOutput(std::string_view output);

}  // namespace cogo::buildtest
