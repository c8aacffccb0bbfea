// Test-runner output parsing (ctest, pytest, JUnit XML) and report.json, from tables of cases.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <csignal>

#include "cogo/buildtest/report.h"
#include "cogo/buildtest/test_output.h"
#include "cogo/artifacts/store.h"

namespace cogo::buildtest {
namespace {

using nlohmann::json;

constexpr const char* kCtestMixed = R"(Test project /ws/build
    Start 1: clamp
1/5 Test #1: clamp ............................***Failed    0.01 sec
FAIL above: got 0, want 10
    Start 2: sum
2/5 Test #2: sum ..............................   Passed    0.00 sec
3/5 Test #3: hang .............................***Timeout   1.50 sec
4/5 Test #4: crash ............................Subprocess aborted***Exception:   0.01 sec
5/5 Test #5: later ............................***Skipped   0.00 sec

20% tests passed, 3 tests failed out of 5
)";

TEST(BuildTestOutputTest, Ctest) {
  const auto c = ParseCtestOutput(kCtestMixed);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->runner, "ctest");
  EXPECT_EQ(c->passed, 1);
  EXPECT_EQ(c->failed, 3);
  EXPECT_EQ(c->skipped, 1);
  EXPECT_EQ(c->failures, (std::vector<TestFailure>{{"clamp", "Failed"}, {"hang", "Timeout"},
                                                    {"crash", "Subprocess aborted***Exception:"}}));
  // Only the summary survived (the output was cut in the middle).
  const auto summary = ParseCtestOutput("[... 100 bytes omitted ...]\n67% tests passed, 1 tests failed out of 3\n");
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->passed, 2);
  EXPECT_EQ(summary->failed, 1);
  EXPECT_FALSE(ParseCtestOutput("No tests were found!!!\n"));
  EXPECT_FALSE(ParseCtestOutput(""));
}

TEST(BuildTestOutputTest, Pytest) {
  const std::string out = "collected 5 items\n\ntests/test_a.py .F.sx\n\n"
                          "=========================== short test summary info ============================\n"
                          "FAILED tests/test_a.py::test_two - assert 1 == 2\n"
                          "ERROR tests/test_b.py::test_setup\n"
                          "===== 1 failed, 2 passed, 1 skipped, 1 xfailed, 1 error in 0.12s =====\n";
  const auto c = ParsePytestOutput(out);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->passed, 2);
  EXPECT_EQ(c->failed, 2);
  EXPECT_EQ(c->skipped, 2);
  EXPECT_EQ(c->failures, (std::vector<TestFailure>{{"tests/test_a.py::test_two", "assert 1 == 2"},
                                                    {"tests/test_b.py::test_setup", "ERROR"}}));
  const auto green = ParseTestOutput("============================== 3 passed in 0.01s ===============================\n");
  ASSERT_TRUE(green);
  EXPECT_EQ(green->runner, "pytest");
  EXPECT_EQ(green->passed, 3);
  EXPECT_FALSE(ParsePytestOutput("no tests ran\n"));
}

TEST(BuildTestOutputTest, JUnitXml) {
  const std::string xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="t" tests="4" failures="1">
  <testcase name="ok" classname="suite" time="0.1"/>
  <testcase name="bad" classname="suite"><failure message="want 10 &amp; got 0">trace</failure></testcase>
  <testcase name="skip"><skipped/></testcase>
  <testcase name="err"><error message=""/></testcase>
</testsuite>)";
  const auto c = ParseJUnitXml(xml);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->passed, 1);
  EXPECT_EQ(c->failed, 2);
  EXPECT_EQ(c->skipped, 1);
  EXPECT_EQ(c->failures, (std::vector<TestFailure>{{"suite.bad", "want 10 & got 0"}, {"err", "failed"}}));
  EXPECT_FALSE(ParseJUnitXml("<testsuite/>"));
}

TEST(BuildTestReportTest, ReportShapes) {
  ReportInput in;
  in.task_id = "t1";
  in.message_id = 7;
  in.fence = 2;
  in.sandbox = "bubblewrap 0.8.0";
  in.apply = {true, 1, {"src/a.c"}, std::nullopt};
  in.build = SandboxRun{.exit_code = 0, .duration_ms = 900, .output = std::string(5000, 'b')};
  in.tests = SandboxRun{.exit_code = 8, .duration_ms = 30, .output = kCtestMixed};
  in.counts = ParseCtestOutput(kCtestMixed);
  in.log_bytes = 100;
  const json r = json::parse(BuildReport(in));
  EXPECT_EQ(r["attempt"], (json{{"message_id", 7}, {"fence", 2}}));
  EXPECT_EQ(r["build"]["ok"], true);
  EXPECT_LE(r["build"]["log"].get<std::string>().size(), 105u);
  EXPECT_EQ(r["tests"]["ok"], false);
  EXPECT_EQ(r["tests"]["exit_code"], 8);
  EXPECT_EQ(r["tests"]["failed"], 3);
  EXPECT_EQ(r["tests"]["failures"][0], (json{{"name", "clamp"}, {"message", "Failed"}}));
  EXPECT_EQ(r["limits"]["timed_out"], false);

  // Edits refused: nothing ran, and the gate sees a failed build.
  ReportInput refused;
  refused.apply = {false, 1, {}, codegen::EditError{0, "search_not_found", "m"}};
  const json n = json::parse(BuildReport(refused));
  EXPECT_EQ(n["apply"]["error"]["reason"], "search_not_found");
  EXPECT_EQ(n["build"], (json{{"ran", false}, {"ok", false}, {"exit_code", -1}, {"signal", 0}, {"timed_out", false},
                              {"duration_ms", 0}, {"log", ""}}));
  EXPECT_EQ(n["tests"]["passed"], 0);

  // A timeout: reported as such, whatever the runner printed before it was killed.
  ReportInput slow;
  slow.apply.ok = true;
  slow.build = SandboxRun{.exit_code = 0, .output = ""};
  slow.tests = SandboxRun{.exit_code = -1, .signal = 9, .timed_out = true, .output = "1/2 Test #1: a ... Passed 0.1 sec"};
  slow.counts = TestCounts{"ctest", 1, 0, 0, {}};
  const json s = json::parse(BuildReport(slow));
  EXPECT_EQ(s["limits"]["timed_out"], true);
  EXPECT_EQ(s["tests"]["timed_out"], true);
  EXPECT_EQ(s["tests"]["ok"], false);
  EXPECT_EQ(s["limits"]["hit"], json::array({"wall_clock"}));

  // Which limit ended a command, from its signal.
  ReportInput limited;
  limited.apply.ok = true;
  limited.build = SandboxRun{.exit_code = -1, .signal = SIGXCPU, .output = ""};
  limited.tests = SandboxRun{.exit_code = 1, .signal = SIGXFSZ, .output = "", .output_truncated = true};
  EXPECT_EQ(json::parse(BuildReport(limited))["limits"]["hit"], json::parse(R"(["cpu", "file_size", "output"])"));
  EXPECT_EQ(n["limits"]["hit"], json::array());
}

TEST(ArtifactsTest, TaskIds) {
  for (const char* ok : {"t1", "tinylib-fix-clamp", "A.b_c-9"}) EXPECT_TRUE(artifacts::ValidTaskId(ok)) << ok;
  for (const char* bad : {"", ".hidden", "-x", "a..b", "a/b", "x.lock", "a b", "..", "é"}) {
    EXPECT_FALSE(artifacts::ValidTaskId(bad)) << bad;
  }
  EXPECT_FALSE(artifacts::ValidTaskId(std::string(129, 'a')));
}

}  // namespace
}  // namespace cogo::buildtest
