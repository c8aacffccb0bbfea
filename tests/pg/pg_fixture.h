// Database test support: the test cluster's URL (COGO_TEST_DATABASE_URL, exported by
// `scripts/cogo-dev test`), a migrated schema, and a fixture that gives every test an empty bus.
// Without a database the tests FAIL; they never skip.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <pqxx/connection>

#include "cogo/bus/bus.h"

namespace cogo::testing {

[[nodiscard]] const std::string& DatabaseUrl();
// The test database's URL with another user (the test cluster trusts local connections).
[[nodiscard]] std::string UrlAs(const std::string& user);

// A single-value query on a fresh connection, e.g. Scalar<int64_t>("SELECT count(*) ...").
[[nodiscard]] std::string ScalarText(const std::string& sql);
template <typename T>
[[nodiscard]] T Scalar(const std::string& sql);

// Polls `condition` until it holds or `timeout` passes; returns whether it held.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(30));

class BusTest : public ::testing::Test {
 protected:
  void SetUp() override;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<bus::Bus> bus_;
};

// A message on the test route with `payload`.
[[nodiscard]] bus::PublishRequest Message(const std::string& payload = R"({"n":1})",
                                          const std::string& service = "test",
                                          const std::string& role = "echo");

// Event names of a message's trail, oldest first, joined with spaces.
[[nodiscard]] std::string Trail(int64_t id);

}  // namespace cogo::testing
