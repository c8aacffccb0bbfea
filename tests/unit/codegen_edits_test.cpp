// Edits: path checks, edits.json and reply-block parsing, exact-once application, and the
// tree checks (symlinks, missing and existing files), from tables of cases.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cogo/codegen/edits.h"
#include "cogo/codegen/repo.h"
#include "cogo/codegen/service.h"

namespace cogo::codegen {
namespace {

std::string ReasonOf(const std::variant<std::vector<Edit>, EditError>& r) {
  return std::holds_alternative<EditError>(r) ? std::get<EditError>(r).reason : "ok";
}

TEST(CodegenEditsTest, PathChecks) {
  struct Case {
    std::string path;
    std::string reason;
  } cases[] = {
      {"src/a.c", "ok"},
      {"a", "ok"},
      {"dir/sub/file.txt", "ok"},
      {"", "path_invalid"},
      {"/etc/passwd", "path_absolute"},
      {"../outside", "path_parent"},
      {"src/../../x", "path_parent"},
      {"src/..", "path_parent"},
      {"src//a.c", "path_invalid"},
      {"./a.c", "path_invalid"},
      {"src/", "path_invalid"},
      {"a\\b", "path_invalid"},
      {std::string("a\0b", 3), "path_invalid"},
      {".git/config", "path_git"},
      {"sub/.git/hooks/pre-commit", "path_git"},
      {".gitignore", "ok"},
      {std::string(300, 'a'), "path_invalid"},
  };
  for (const auto& c : cases) {
    const auto r = CheckPath(c.path, {});
    EXPECT_EQ(std::holds_alternative<EditError>(r) ? std::get<EditError>(r).reason : "ok", c.reason) << c.path;
  }
}

TEST(CodegenEditsTest, EditsJson) {
  struct Case {
    std::string json;
    std::string reason;
  } cases[] = {
      {R"([{"path":"a.c","search":"x","replace":"y"}])", "ok"},
      {R"([{"path":"new.c","replace":"int x;\n"}])", "ok"},
      {R"([])", "ok"},
      {R"({"path":"a.c"})", "malformed"},
      {R"([{"path":"a.c","search":"x"}])", "malformed"},
      {R"([{"path":"a.c","search":"x","replace":"y","mode":"777"}])", "malformed"},
      {R"([{"path":"a.c","search":1,"replace":"y"}])", "malformed"},
      {R"([{"path":"a.c","path":"b.c","replace":"y"}])", "malformed"},
      {R"([{"path":"../a.c","search":"x","replace":"y"}])", "path_parent"},
      {R"([{"path":"/tmp/a.c","search":"x","replace":"y"}])", "path_absolute"},
      {"not json", "malformed"},
  };
  for (const auto& c : cases) EXPECT_EQ(ReasonOf(ParseEditsJson(c.json, {})), c.reason) << c.json;
  EditLimits small;
  small.max_edits = 1;
  EXPECT_EQ(ReasonOf(ParseEditsJson(R"([{"path":"a","replace":""},{"path":"b","replace":""}])", small)), "too_many_edits");
  small.max_text_bytes = 3;
  EXPECT_EQ(ReasonOf(ParseEditsJson(R"([{"path":"a","replace":"long text"}])", small)), "malformed");
  const std::vector<Edit> edits = {{"a.c", "x\n", "y\n"}, {"b.c", "", "new\n"}};
  EXPECT_EQ(std::get<std::vector<Edit>>(ParseEditsJson(EditsToJson(edits), {})), edits);
}

TEST(CodegenEditsTest, ReplyBlocks) {
  const std::string good =
      "Here is the fix.\n\n```c\nsrc/tiny.c\n<<<<<<< SEARCH\n  if (x > hi) return lo;\n=======\n"
      "  if (x > hi) return hi;\n>>>>>>> REPLACE\n```\n\n`src/new.h`\n<<<<<<< SEARCH\n=======\n#pragma once\n"
      ">>>>>>> REPLACE\n<<<<<<< SEARCH\n#pragma once\n=======\n#pragma once // same file again\n>>>>>>> REPLACE\n";
  const auto parsed = ParseReplyBlocks(good, {});
  ASSERT_EQ(ReasonOf(parsed), "ok");
  const auto& edits = std::get<std::vector<Edit>>(parsed);
  ASSERT_EQ(edits.size(), 3u);
  EXPECT_EQ(edits[0], (Edit{"src/tiny.c", "  if (x > hi) return lo;\n", "  if (x > hi) return hi;\n"}));
  EXPECT_EQ(edits[1], (Edit{"src/new.h", "", "#pragma once\n"}));
  EXPECT_EQ(edits[2].path, "src/new.h");  // a block without a path line keeps the last path

  struct Case {
    std::string reply;
    std::string reason;
  } cases[] = {
      {"I cannot help with that.", "malformed"},
      {"", "malformed"},
      {"<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n", "malformed"},            // no path
      {"a.c\n<<<<<<< SEARCH\na\n=======\nb\n", "malformed"},                         // unterminated
      {"a.c\n<<<<<<< SEARCH\na\n>>>>>>> REPLACE\n", "malformed"},                    // no =======
      {"a.c\n=======\n", "malformed"},                                               // stray marker
      {"../../etc/passwd\n<<<<<<< SEARCH\n=======\nroot::0:0\n>>>>>>> REPLACE\n", "path_parent"},
      {"/etc/cron.d/x\n<<<<<<< SEARCH\n=======\n* * * * * root sh\n>>>>>>> REPLACE\n", "path_absolute"},
      {".git/hooks/post-commit\n<<<<<<< SEARCH\n=======\nrm -rf /\n>>>>>>> REPLACE\n", "path_git"},
      {"a.c\r\n<<<<<<< SEARCH\r\na\r\n=======\r\nb\r\n>>>>>>> REPLACE\r\n", "ok"},
  };
  for (const auto& c : cases) EXPECT_EQ(ReasonOf(ParseReplyBlocks(c.reply, {})), c.reason) << c.reply;
}

TEST(CodegenEditsTest, ApplyToTextNeedsExactlyOneMatch) {
  struct Case {
    std::string content, search, replace, want;
  } cases[] = {
      {"a b c", "b", "B", "a B c"},
      {"a b b", "b", "B", "search_ambiguous"},
      {"a b c", "x", "X", "search_not_found"},
      {"a b c", "B", "X", "search_not_found"},  // exact bytes, case included
      {"line\n", "line\n", "", ""},
  };
  for (const auto& c : cases) {
    const auto r = ApplyToText(c.content, {"f", c.search, c.replace}, {});
    EXPECT_EQ(std::holds_alternative<EditError>(r) ? std::get<EditError>(r).reason : std::get<std::string>(r), c.want)
        << c.content << " / " << c.search;
  }
  EditLimits small;
  small.max_file_bytes = 4;
  const auto big = ApplyToText("ab", {"f", "a", "aaaaaa"}, small);
  EXPECT_EQ(std::get<EditError>(big).reason, "too_large");
}

class TreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "cogo-edits-test.XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    base_ = templ;
    root_ = base_ + "/repo";
    std::filesystem::create_directories(root_ + "/src");
    std::ofstream(root_ + "/src/a.c") << "int a = 1;\n";
    std::ofstream(base_ + "/outside.txt") << "secret\n";
    std::filesystem::create_symlink(base_ + "/outside.txt", root_ + "/link.txt");
    std::filesystem::create_directory_symlink(base_, root_ + "/up");
  }
  void TearDown() override { std::filesystem::remove_all(base_); }
  std::string base_, root_;
};

TEST_F(TreeTest, PlanRefusesSymlinksAndChecksExistence) {
  struct Case {
    std::vector<Edit> edits;
    std::string reason;
  } cases[] = {
      {{{"src/a.c", "int a = 1;", "int a = 2;"}}, "ok"},
      {{{"src/a.c", "int a = 1;", "int a = 2;"}, {"src/a.c", "a = 2", "a = 3"}}, "ok"},  // in order
      {{{"src/b.c", "", "int b;\n"}, {"src/b.c", "int b;", "int b = 0;"}}, "ok"},
      {{{"src/a.c", "", "x"}}, "file_exists"},
      {{{"src/none.c", "x", "y"}}, "file_missing"},
      {{{"link.txt", "secret", "pwned"}}, "symlink_in_path"},
      {{{"up/outside.txt", "secret", "pwned"}}, "symlink_in_path"},
      {{{"up/new.txt", "", "pwned"}}, "symlink_in_path"},
      {{{"src", "x", "y"}}, "not_a_file"},
      {{{"src/a.c", "int a = 1;", "int a = 2;"}, {"../outside.txt", "secret", "x"}}, "path_parent"},
  };
  for (const auto& c : cases) {
    const auto r = PlanEdits(root_, c.edits, {});
    EXPECT_EQ(std::holds_alternative<EditError>(r) ? std::get<EditError>(r).reason : "ok", c.reason) << c.edits.back().path;
  }
  const auto planned = PlanEdits(root_, {{"src/a.c", "1", "2"}, {"src/new/deep.c", "", "int d;\n"}}, {});
  ASSERT_TRUE(std::holds_alternative<std::vector<FileChange>>(planned));
  WriteChanges(root_, std::get<std::vector<FileChange>>(planned));
  std::stringstream a, d, outside;
  a << std::ifstream(root_ + "/src/a.c").rdbuf();
  d << std::ifstream(root_ + "/src/new/deep.c").rdbuf();
  outside << std::ifstream(base_ + "/outside.txt").rdbuf();
  EXPECT_EQ(a.str(), "int a = 2;\n");
  EXPECT_EQ(d.str(), "int d;\n");
  EXPECT_EQ(outside.str(), "secret\n");
}

TEST_F(TreeTest, RepositoriesMustBeInsideARoot) {
  EXPECT_EQ(ResolveRepo(root_, {base_}), std::filesystem::canonical(root_).string());
  EXPECT_EQ(ResolveRepo(root_ + "/src/..", {root_}), std::filesystem::canonical(root_).string());
  EXPECT_EQ(ResolveRepo(base_, {root_}), std::nullopt);
  EXPECT_EQ(ResolveRepo(root_ + "/up", {root_}), std::nullopt);  // a symlink out of the root
  EXPECT_EQ(ResolveRepo(root_ + "/missing", {base_}), std::nullopt);
  EXPECT_EQ(ResolveRepo(root_ + "/src/a.c", {base_}), std::nullopt);
  EXPECT_EQ(ResolveRepo(base_ + "/repo-other", {root_}), std::nullopt);
  EXPECT_EQ(ListRepoFiles(root_, 10), std::vector<std::string>{"src/a.c"});
}

TEST(CodegenPromptTest, ContextPrefersNamedFilesWithinCaps) {
  ContextLimits limits;
  limits.max_file_bytes = 100;
  limits.max_total_bytes = 250;
  const std::vector<std::pair<std::string, std::size_t>> files = {
      {"README.md", 50}, {"src/big.c", 1000}, {"src/tiny.c", 80}, {"tests/t.c", 60}, {"x.txt", 10}};
  EXPECT_EQ(ChooseContextFiles("fix tiny.c and src/big.c", files, limits),
            (std::vector<std::string>{"src/big.c", "src/tiny.c", "x.txt", "README.md"}));
  EXPECT_EQ(ChooseContextFiles("nothing named", files, limits),
            (std::vector<std::string>{"x.txt", "README.md", "tests/t.c", "src/tiny.c"}));
}

TEST(CodegenPromptTest, PromptAndFeedback) {
  const auto messages = BuildPrompt("Fix it", {"a.c", "b.c"}, {{"a.c", "int a;", false}}, "Failing tests:\n- t: Failed\n");
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].role, "system");
  EXPECT_NE(messages[0].content.find("<<<<<<< SEARCH"), std::string::npos);
  EXPECT_NE(messages[1].content.find("Fix it"), std::string::npos);
  EXPECT_NE(messages[1].content.find("a.c\n```\nint a;\n```"), std::string::npos);
  EXPECT_NE(messages[1].content.find("did not pass"), std::string::npos);

  EXPECT_EQ(FeedbackText(""), "");
  EXPECT_EQ(FeedbackText("null"), "");
  const std::string report = R"({"apply":{"ok":true},"build":{"ok":true,"exit_code":0,"log":""},
      "tests":{"failed":1,"failures":[{"name":"clamp","message":"Failed"}]},"limits":{"timed_out":true}})";
  EXPECT_EQ(FeedbackText(report), "Failing tests:\n- clamp: Failed\nThe run was stopped at its time limit.\n");
  const std::string refused = R"({"apply":{"ok":false,"error":{"reason":"search_not_found","message":"m"}},
      "build":{"ran":false,"ok":false}})";
  EXPECT_EQ(FeedbackText(refused), "The edits did not apply: search_not_found: m\n");
  EXPECT_NE(RejectionText({2, "path_parent", "no .."}).find("path_parent (edit 2): no .."), std::string::npos);
}

}  // namespace
}  // namespace cogo::codegen
