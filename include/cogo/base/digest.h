// SHA-256 digests as lower-case hex: content addresses (migrations, workflow definitions) and
// HMAC signatures (webhooks). Pure functions over OpenSSL; thread-safe.
#pragma once

#include <string>

namespace cogo::base {

[[nodiscard]] std::string Sha256Hex(const std::string& bytes);
[[nodiscard]] std::string HmacSha256Hex(const std::string& key, const std::string& bytes);

}  // namespace cogo::base
