// Authentication for cogo's HTTP services: HS256 JWT verification and minting (through libjwt, no
// crypto of our own), the Bearer header, the tenant check and the publishable-apikey check. Every
// outcome a client can cause is a machine-readable AuthError value; no message contains a secret.
// Thread-safe: pure functions of their arguments; time is passed in as seconds since the epoch.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cogo::auth {

enum class Role { kAnon, kAuthenticated, kServiceRole };

// "anon", "authenticated", "service_role"; ParseRole returns nullopt for anything else.
[[nodiscard]] std::string_view ToString(Role role);
[[nodiscard]] std::optional<Role> ParseRole(std::string_view text);

enum class AuthError {
  kMissingToken,       // no Authorization header, or no token in it
  kMalformedToken,     // not three base64url segments of JSON objects, wrong claim types, too long
  kBadSignature,       // signature does not verify with the configured secret
  kAlgNotAllowed,      // header alg is anything but HS256 (notably "none")
  kTokenExpired,       // now is past exp (+ leeway)
  kTokenNotYetValid,   // now is before nbf (- leeway)
  kMissingExp,         // no exp claim while VerifyOptions::require_exp
  kMissingRole,        // no role claim
  kUnknownRole,        // role is not anon | authenticated | service_role
  kMissingTenant,      // no tenant claim and the role is not service_role
  kTenantMismatch,     // the token's tenant is not the request's tenant
  kMissingApikey,      // no apikey header
  kBadApikey,          // apikey does not match the configured publishable key
};

// The machine-readable code, e.g. "token_expired"; stable, used in 4xx bodies and metrics.
[[nodiscard]] std::string_view ToString(AuthError error);
// A short human sentence for the error body. Never includes a token, key or secret.
[[nodiscard]] std::string_view Describe(AuthError error);
// 401 for authentication failures, 403 for kTenantMismatch.
[[nodiscard]] int HttpStatus(AuthError error);

struct Claims {
  Role role = Role::kAnon;
  std::string tenant;               // empty only for service_role tokens without one
  std::string sub;                  // empty when the token has none
  std::optional<int64_t> exp;       // seconds since the epoch
  std::optional<int64_t> nbf;
};

struct VerifyOptions {
  int64_t leeway_seconds = 30;      // clock skew tolerated on exp and nbf
  bool require_exp = true;          // a token without exp is rejected (kMissingExp)
  size_t max_token_bytes = 8192;    // longer tokens are kMalformedToken before any parsing
};

// Either the verified claims or the reason the token was refused.
class [[nodiscard]] VerifyResult {
 public:
  VerifyResult(Claims claims) : value_(std::move(claims)) {}  // NOLINT: implicit by design
  VerifyResult(AuthError error) : value_(error) {}            // NOLINT
  [[nodiscard]] bool ok() const { return std::holds_alternative<Claims>(value_); }
  // Precondition: ok().
  [[nodiscard]] const Claims& claims() const { return std::get<Claims>(value_); }
  // Precondition: !ok().
  [[nodiscard]] AuthError error() const { return std::get<AuthError>(value_); }

 private:
  std::variant<Claims, AuthError> value_;
};

// Verifies signature (HS256 only), exp, nbf, role and tenant presence. `now` in seconds since
// the epoch. Throws std::invalid_argument when `secret` is empty (a configuration error).
VerifyResult VerifyToken(std::string_view token, std::string_view secret, int64_t now,
                         const VerifyOptions& options = {});

// The token of an `Authorization: Bearer <token>` value ("bearer" in any case, spaces
// trimmed); nullopt when the value is empty, uses another scheme, or carries no token.
[[nodiscard]] std::optional<std::string_view> ExtractBearer(std::string_view header_value);

// ExtractBearer + VerifyToken: an absent/empty header is kMissingToken, another scheme or a
// token with spaces is kMalformedToken.
VerifyResult VerifyAuthorizationHeader(std::optional<std::string_view> header_value,
                                       std::string_view secret, int64_t now,
                                       const VerifyOptions& options = {});

// nullopt when the caller may act for `request_tenant`: its token names that tenant, or its
// role is service_role (which may act for any tenant).
[[nodiscard]] std::optional<AuthError> CheckTenantAccess(const Claims& claims,
                                                         std::string_view request_tenant);

// nullopt when `presented` equals `publishable_key`, compared in constant time (over SHA-256
// digests, so the length does not leak either). Throws std::invalid_argument when the
// configured key is empty.
[[nodiscard]] std::optional<AuthError> CheckApiKey(std::optional<std::string_view> presented,
                                                   std::string_view publishable_key);

struct MintClaims {
  Role role = Role::kAuthenticated;
  std::string tenant;               // omitted from the token when empty
  std::string sub;                  // omitted when empty
  std::optional<int64_t> nbf;       // omitted when unset
};

// An HS256 token with iat = now and exp = now + ttl, for development and tests.
// Throws std::invalid_argument on an empty secret or a non-positive ttl.
[[nodiscard]] std::string MintToken(std::string_view secret, const MintClaims& claims,
                                    int64_t now, std::chrono::seconds ttl);

// The command-line shape of MintToken (`cogo mint-jwt --role .. --tenant .. --ttl ..`): role by
// name, the current system time. Throws std::invalid_argument on an unknown role.
[[nodiscard]] std::string MintDevToken(std::string_view secret, std::string_view role,
                                       std::string_view tenant, std::string_view sub = "dev",
                                       std::chrono::seconds ttl = std::chrono::hours(1));

}  // namespace cogo::auth
