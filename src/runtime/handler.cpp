#include "cogo/runtime/handler.h"

namespace cogo::runtime {

HandlerResult HandlerResult::Complete(std::string result_json, std::string snippet,
                                      std::string url) {
  HandlerResult r;
  r.kind = Kind::complete;
  r.result_json = std::move(result_json);
  r.snippet = std::move(snippet);
  r.url = std::move(url);
  return r;
}

HandlerResult HandlerResult::Retry(std::string reason, std::string detail,
                                   std::optional<std::chrono::milliseconds> delay) {
  HandlerResult r;
  r.kind = Kind::retry;
  r.reason = std::move(reason);
  r.detail = std::move(detail);
  r.retry_delay = delay;
  return r;
}

HandlerResult HandlerResult::GiveBack(std::string reason, std::string detail,
                                      std::optional<std::chrono::milliseconds> delay) {
  HandlerResult r = Retry(std::move(reason), std::move(detail), delay);
  r.kind = Kind::give_back;
  return r;
}

HandlerResult HandlerResult::Fail(std::string reason, std::string detail) {
  HandlerResult r;
  r.kind = Kind::fail;
  r.reason = std::move(reason);
  r.detail = std::move(detail);
  return r;
}

HandlerResult HandlerResult::Committed() {
  HandlerResult r;
  r.kind = Kind::committed;
  return r;
}

HandlerResult HandlerResult::LeaseLost() {
  HandlerResult r = Committed();
  r.lease_lost = true;
  return r;
}

std::string HandlerResult::error() const {
  return detail.empty() ? reason : reason + ": " + detail;
}

PermanentError::PermanentError(std::string reason, std::string detail)
    : std::runtime_error(detail.empty() ? reason : reason + ": " + detail),
      reason_(std::move(reason)),
      detail_(std::move(detail)) {}

UsageGuard::UsageGuard(std::optional<policy::Budget> budget, std::stop_source stop)
    : stop_(std::move(stop)) {
  if (budget) meter_.emplace(*budget);
}

policy::MeterVerdict UsageGuard::Report(const policy::Usage& usage) {
  std::lock_guard lock(mu_);
  reported_ = true;
  if (!meter_) {
    unmetered_ += usage;
    return policy::MeterVerdict::within;
  }
  const auto verdict = meter_->Add(usage);
  if (verdict != policy::MeterVerdict::within) stop_.request_stop();
  return verdict;
}

policy::Usage UsageGuard::total() const {
  std::lock_guard lock(mu_);
  return meter_ ? meter_->total() : unmetered_;
}

policy::MeterVerdict UsageGuard::verdict() const {
  std::lock_guard lock(mu_);
  return meter_ ? meter_->verdict() : policy::MeterVerdict::within;
}

bool UsageGuard::reported() const {
  std::lock_guard lock(mu_);
  return reported_;
}

}  // namespace cogo::runtime
