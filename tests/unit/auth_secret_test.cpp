// auth::RequiredSecret: a secret from NAME or from the file NAME_FILE, which only its owner may
// read; every refusal names the variable and never the value.
#include "cogo/auth/secret.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

namespace cogo::auth {
namespace {

constexpr const char* kName = "COGO_TEST_SECRET_7f3a";
constexpr const char* kValue = "s3cret-value-91c2";

class SecretTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "cogo-secret-" + std::to_string(getpid());
    unsetenv(kName);
    unsetenv((std::string(kName) + "_FILE").c_str());
  }
  void TearDown() override {
    unsetenv(kName);
    unsetenv((std::string(kName) + "_FILE").c_str());
    std::remove(path_.c_str());
  }
  void WriteFile(const std::string& contents, mode_t mode) {
    std::ofstream(path_, std::ios::trunc) << contents;
    chmod(path_.c_str(), mode);
    setenv((std::string(kName) + "_FILE").c_str(), path_.c_str(), 1);
  }
  // The refusal's text: it must name the variable and not show the value.
  static std::string Refusal() {
    try {
      (void)RequiredSecret(kName);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(accepted)";
  }
  std::string path_;
};

TEST_F(SecretTest, TheVariableWinsThenTheFileWithoutItsNewline) {
  WriteFile(std::string("from-file-") + kValue + "\n", 0600);
  EXPECT_EQ(RequiredSecret(kName), std::string("from-file-") + kValue);
  setenv(kName, kValue, 1);
  EXPECT_EQ(RequiredSecret(kName), kValue);
}

TEST_F(SecretTest, AFileOthersMayReadOrNoSecretAtAllIsRefusedWithoutTheValue) {
  struct Case {
    const char* contents;  // nullptr: no file variable at all
    mode_t mode;
    const char* names;     // what the refusal must name
  };
  const Case cases[] = {
      {nullptr, 0600, "COGO_TEST_SECRET_7f3a is not set"},
      {kValue, 0640, "must not be accessible by group or others"},
      {kValue, 0604, "must not be accessible by group or others"},
      {kValue, 0660, "must not be accessible by group or others"},
      {"\n", 0600, "unreadable or empty"},
  };
  for (const auto& c : cases) {
    if (c.contents != nullptr) WriteFile(c.contents, c.mode);
    const std::string refusal = Refusal();
    EXPECT_NE(refusal.find(c.names), std::string::npos) << refusal;
    EXPECT_NE(refusal.find(kName), std::string::npos) << refusal;
    EXPECT_EQ(refusal.find(kValue), std::string::npos) << refusal;
  }
}

}  // namespace
}  // namespace cogo::auth
