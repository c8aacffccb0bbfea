#include "cogo/auth/jwt.h"

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <new>
#include <stdexcept>

#include "cogo/base/unix_time.h"

namespace cogo::auth {
namespace {

using nlohmann::json;

struct JwtDeleter {
  void operator()(jwt_t* token) const { jwt_free(token); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

struct MallocDeleter {
  void operator()(char* text) const { std::free(text); }  // NOLINT: libjwt hands out malloc'd text
};

// Strict base64url (RFC 7515 section 2: no padding, URL alphabet). Encoding, not crypto.
std::optional<std::string> DecodeBase64Url(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    int value;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    else if (c >= '0' && c <= '9') value = c - '0' + 52;
    else if (c == '-') value = 62;
    else if (c == '_') value = 63;
    else return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFFu));
    }
  }
  return out;
}

std::optional<json> DecodeJsonSegment(std::string_view segment) {
  auto bytes = DecodeBase64Url(segment);
  if (!bytes) return std::nullopt;
  json parsed = json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return std::nullopt;
  return parsed;
}

// Reads an optional NumericDate claim. Fractional values are truncated (RFC 7519 allows them).
// Returns false when present with a non-numeric type.
bool ReadTime(const json& payload, const char* name, std::optional<int64_t>* out) {
  auto it = payload.find(name);
  if (it == payload.end() || it->is_null()) return true;
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
    return true;
  }
  if (it->is_number_float()) {
    double value = it->get<double>();
    if (value > 9.2e18 || value < -9.2e18) return false;
    *out = static_cast<int64_t>(value);
    return true;
  }
  return false;
}

// Reads an optional string claim; false when present with another type.
bool ReadString(const json& payload, const char* name, std::optional<std::string>* out) {
  auto it = payload.find(name);
  if (it == payload.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

VerifyResult ClaimsFromPayload(const json& payload, int64_t now, const VerifyOptions& options) {
  Claims claims;
  std::optional<std::string> role, tenant, sub;
  if (!ReadTime(payload, "exp", &claims.exp) || !ReadTime(payload, "nbf", &claims.nbf) ||
      !ReadString(payload, "role", &role) || !ReadString(payload, "tenant", &tenant) ||
      !ReadString(payload, "sub", &sub)) {
    return AuthError::kMalformedToken;
  }
  if (!claims.exp && options.require_exp) return AuthError::kMissingExp;
  // RFC 7519: valid strictly before exp and from nbf on; leeway widens both ends.
  if (claims.exp && now - options.leeway_seconds >= *claims.exp) return AuthError::kTokenExpired;
  if (claims.nbf && now + options.leeway_seconds < *claims.nbf) {
    return AuthError::kTokenNotYetValid;
  }
  if (!role || role->empty()) return AuthError::kMissingRole;
  auto parsed_role = ParseRole(*role);
  if (!parsed_role) return AuthError::kUnknownRole;
  claims.role = *parsed_role;
  if (tenant) claims.tenant = std::move(*tenant);
  if (claims.tenant.empty() && claims.role != Role::kServiceRole) {
    return AuthError::kMissingTenant;
  }
  if (sub) claims.sub = std::move(*sub);
  return claims;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

void RequireSecret(std::string_view secret) {
  if (secret.empty()) throw std::invalid_argument("JWT secret is not configured (empty)");
}

}  // namespace

std::string_view ToString(Role role) {
  switch (role) {
    case Role::kAnon: return "anon";
    case Role::kAuthenticated: return "authenticated";
    case Role::kServiceRole: return "service_role";
  }
  return "unknown";
}

std::optional<Role> ParseRole(std::string_view text) {
  if (text == "anon") return Role::kAnon;
  if (text == "authenticated") return Role::kAuthenticated;
  if (text == "service_role") return Role::kServiceRole;
  return std::nullopt;
}

std::string_view ToString(AuthError error) {
  switch (error) {
    case AuthError::kMissingToken: return "missing_token";
    case AuthError::kMalformedToken: return "malformed_token";
    case AuthError::kBadSignature: return "bad_signature";
    case AuthError::kAlgNotAllowed: return "alg_not_allowed";
    case AuthError::kTokenExpired: return "token_expired";
    case AuthError::kTokenNotYetValid: return "token_not_yet_valid";
    case AuthError::kMissingExp: return "missing_exp";
    case AuthError::kMissingRole: return "missing_role";
    case AuthError::kUnknownRole: return "unknown_role";
    case AuthError::kMissingTenant: return "missing_tenant";
    case AuthError::kTenantMismatch: return "tenant_mismatch";
    case AuthError::kMissingApikey: return "missing_apikey";
    case AuthError::kBadApikey: return "bad_apikey";
  }
  return "unknown_auth_error";
}

std::string_view Describe(AuthError error) {
  switch (error) {
    case AuthError::kMissingToken: return "an Authorization: Bearer <JWT> header is required";
    case AuthError::kMalformedToken: return "the bearer token is not a well-formed JWT";
    case AuthError::kBadSignature: return "the token signature does not verify";
    case AuthError::kAlgNotAllowed: return "only HS256 tokens are accepted";
    case AuthError::kTokenExpired: return "the token has expired";
    case AuthError::kTokenNotYetValid: return "the token is not valid yet (nbf)";
    case AuthError::kMissingExp: return "the token has no exp claim";
    case AuthError::kMissingRole: return "the token has no role claim";
    case AuthError::kUnknownRole:
      return "the token role must be anon, authenticated or service_role";
    case AuthError::kMissingTenant: return "the token has no tenant claim";
    case AuthError::kTenantMismatch: return "the token may not act for this tenant";
    case AuthError::kMissingApikey: return "an apikey header is required";
    case AuthError::kBadApikey: return "the apikey is not valid";
  }
  return "authentication failed";
}

int HttpStatus(AuthError error) { return error == AuthError::kTenantMismatch ? 403 : 401; }

VerifyResult VerifyToken(std::string_view token, std::string_view secret, int64_t now,
                         const VerifyOptions& options) {
  RequireSecret(secret);
  if (token.empty()) return AuthError::kMissingToken;
  if (token.size() > options.max_token_bytes) return AuthError::kMalformedToken;

  // Structure and header first, ourselves: libjwt 1.10 accepts any HMAC alg with the same key
  // and reports every failure as EINVAL, so the alg pin and the error codes live here.
  const size_t first_dot = token.find('.');
  const size_t second_dot =
      first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos ||
      token.find('.', second_dot + 1) != std::string_view::npos) {
    return AuthError::kMalformedToken;
  }
  auto header = DecodeJsonSegment(token.substr(0, first_dot));
  auto payload = DecodeJsonSegment(token.substr(first_dot + 1, second_dot - first_dot - 1));
  if (!header || !payload) return AuthError::kMalformedToken;
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string()) return AuthError::kMalformedToken;
  if (alg->get<std::string>() != "HS256") return AuthError::kAlgNotAllowed;
  auto typ = header->find("typ");
  if (typ != header->end() && !(typ->is_string() && EqualsIgnoreCase(typ->get<std::string>(), "JWT"))) {
    return AuthError::kMalformedToken;
  }
  if (DecodeBase64Url(token.substr(second_dot + 1)).value_or("").empty()) {
    return AuthError::kBadSignature;
  }

  // Signature, by libjwt. jwt_decode needs a NUL-terminated copy.
  const std::string token_text(token);
  jwt_t* raw = nullptr;
  const int rc = jwt_decode(&raw, token_text.c_str(),
                            reinterpret_cast<const unsigned char*>(secret.data()),
                            static_cast<int>(secret.size()));
  JwtPtr decoded(raw);
  if (rc == ENOMEM) throw std::bad_alloc();
  if (rc != 0 || !decoded) return AuthError::kBadSignature;
  if (jwt_get_alg(decoded.get()) != JWT_ALG_HS256) return AuthError::kAlgNotAllowed;

  // The payload we parsed is the one whose signature just verified.
  return ClaimsFromPayload(*payload, now, options);
}

std::optional<std::string_view> ExtractBearer(std::string_view header_value) {
  std::string_view value = Trim(header_value);
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() || !EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  if (value[kScheme.size()] != ' ' && value[kScheme.size()] != '\t') return std::nullopt;
  std::string_view token = Trim(value.substr(kScheme.size()));
  if (token.empty() || token.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
  return token;
}

VerifyResult VerifyAuthorizationHeader(std::optional<std::string_view> header_value,
                                       std::string_view secret, int64_t now,
                                       const VerifyOptions& options) {
  RequireSecret(secret);
  if (!header_value || Trim(*header_value).empty()) return AuthError::kMissingToken;
  auto token = ExtractBearer(*header_value);
  if (!token) {
    // "Bearer" with nothing after it is a missing token; another scheme is malformed.
    return EqualsIgnoreCase(Trim(*header_value), "bearer") ? AuthError::kMissingToken
                                                           : AuthError::kMalformedToken;
  }
  return VerifyToken(*token, secret, now, options);
}

std::optional<AuthError> CheckTenantAccess(const Claims& claims, std::string_view request_tenant) {
  if (claims.role == Role::kServiceRole) return std::nullopt;
  if (claims.tenant.empty() || claims.tenant != request_tenant) return AuthError::kTenantMismatch;
  return std::nullopt;
}

std::optional<AuthError> CheckApiKey(std::optional<std::string_view> presented,
                                     std::string_view publishable_key) {
  if (publishable_key.empty()) {
    throw std::invalid_argument("publishable apikey is not configured (empty)");
  }
  if (!presented || presented->empty()) return AuthError::kMissingApikey;
  std::array<unsigned char, SHA256_DIGEST_LENGTH> presented_digest{};
  std::array<unsigned char, SHA256_DIGEST_LENGTH> expected_digest{};
  SHA256(reinterpret_cast<const unsigned char*>(presented->data()), presented->size(),
         presented_digest.data());
  SHA256(reinterpret_cast<const unsigned char*>(publishable_key.data()), publishable_key.size(),
         expected_digest.data());
  if (CRYPTO_memcmp(presented_digest.data(), expected_digest.data(), presented_digest.size()) != 0) {
    return AuthError::kBadApikey;
  }
  return std::nullopt;
}

std::string MintToken(std::string_view secret, const MintClaims& claims, int64_t now,
                      std::chrono::seconds ttl) {
  RequireSecret(secret);
  if (ttl.count() <= 0) throw std::invalid_argument("JWT ttl must be positive");
  json grants = {{"role", std::string(ToString(claims.role))},
                 {"iat", now},
                 {"exp", now + static_cast<int64_t>(ttl.count())}};
  if (!claims.tenant.empty()) grants["tenant"] = claims.tenant;
  if (!claims.sub.empty()) grants["sub"] = claims.sub;
  if (claims.nbf) grants["nbf"] = *claims.nbf;

  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::bad_alloc();
  JwtPtr token(raw);
  if (jwt_add_grants_json(token.get(), grants.dump().c_str()) != 0 ||
      jwt_set_alg(token.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) != 0) {
    throw std::runtime_error("libjwt could not build the token");
  }
  std::unique_ptr<char, MallocDeleter> encoded(jwt_encode_str(token.get()));
  if (!encoded) throw std::runtime_error("libjwt could not encode the token");
  return std::string(encoded.get());
}

std::string MintDevToken(std::string_view secret, std::string_view role, std::string_view tenant,
                         std::string_view sub, std::chrono::seconds ttl) {
  auto parsed = ParseRole(role);
  if (!parsed) {
    throw std::invalid_argument("role must be anon, authenticated or service_role");
  }
  return MintToken(secret, MintClaims{*parsed, std::string(tenant), std::string(sub), std::nullopt},
                   base::UnixSeconds(), ttl);
}

}  // namespace cogo::auth
