#include "cogo/auth/jwt.h"

#include <gtest/gtest.h>
#include <jwt.h>

#include <cstdlib>

#include <string>

namespace cogo::auth {
namespace {

using std::chrono::seconds;

constexpr std::string_view kSecret = "test-secret-that-is-at-least-32-bytes-long";
constexpr int64_t kNow = 1'700'000'000;

std::string Base64Url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(buffer >> bits) & 0x3Fu]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (6 - bits)) & 0x3Fu]);
  return out;
}

// A token assembled by hand from raw JSON: header.payload.signature.
std::string Craft(std::string_view header, std::string_view payload, std::string_view signature) {
  return Base64Url(header) + "." + Base64Url(payload) + "." + std::string(signature);
}

std::string Good(MintClaims claims = {Role::kAuthenticated, "acme", "user-1", std::nullopt},
                 seconds ttl = seconds(3600)) {
  return MintToken(kSecret, claims, kNow, ttl);
}

std::string Code(const VerifyResult& result) {
  return result.ok() ? "ok" : std::string(ToString(result.error()));
}

std::string SignaturePart(const std::string& token) { return token.substr(token.rfind('.') + 1); }

TEST(Jwt, GoodTokenYieldsClaims) {
  auto result = VerifyToken(Good(), kSecret, kNow + 10);
  ASSERT_TRUE(result.ok()) << Code(result);
  EXPECT_EQ(result.claims().role, Role::kAuthenticated);
  EXPECT_EQ(result.claims().tenant, "acme");
  EXPECT_EQ(result.claims().sub, "user-1");
  EXPECT_EQ(result.claims().exp, kNow + 3600);
  EXPECT_FALSE(result.claims().nbf.has_value());
}

TEST(Jwt, RejectionMatrix) {
  const std::string good = Good();
  const std::string hs256_header = R"({"alg":"HS256","typ":"JWT"})";
  const std::string payload =
      R"({"role":"authenticated","tenant":"acme","exp":)" + std::to_string(kNow + 3600) + "}";
  // The same claims signed with another secret.
  const std::string other_secret =
      MintToken("another-secret-another-secret-another", {Role::kAuthenticated, "acme", "", {}},
                kNow, seconds(3600));
  // A valid HS256 signature moved onto a different payload.
  const std::string tampered = Craft(hs256_header, payload, SignaturePart(good));
  // A signature with one character flipped (not the last, whose low bits are padding).
  std::string flipped = good;
  char& victim = flipped[flipped.size() - 5];
  victim = victim == 'A' ? 'B' : 'A';

  struct Case {
    const char* name;
    std::string token;
    int64_t now;
    const char* expected;
  };
  const Case cases[] = {
      {"good", good, kNow, "ok"},
      {"bad signature: other secret", other_secret, kNow, "bad_signature"},
      {"bad signature: tampered payload", tampered, kNow, "bad_signature"},
      {"bad signature: flipped", flipped, kNow, "bad_signature"},
      {"bad signature: empty", Craft(hs256_header, payload, ""), kNow, "bad_signature"},
      {"expired", good, kNow + 3600 + 31, "token_expired"},
      {"expired within leeway is accepted", good, kNow + 3600 + 29, "ok"},
      {"not yet valid", Good({Role::kAuthenticated, "acme", "", kNow + 600}), kNow,
       "token_not_yet_valid"},
      {"nbf within leeway is accepted", Good({Role::kAuthenticated, "acme", "", kNow + 20}), kNow,
       "ok"},
      {"alg none, empty signature", Craft(R"({"alg":"none"})", payload, ""), kNow,
       "alg_not_allowed"},
      {"alg none with typ", Craft(R"({"alg":"none","typ":"JWT"})", payload, ""), kNow,
       "alg_not_allowed"},
      {"alg None (case games)", Craft(R"({"alg":"None"})", payload, ""), kNow, "alg_not_allowed"},
      {"alg HS512 with a real signature",
       Craft(R"({"alg":"HS512","typ":"JWT"})", payload, SignaturePart(good)), kNow,
       "alg_not_allowed"},
      {"alg RS256", Craft(R"({"alg":"RS256","typ":"JWT"})", payload, "c2ln"), kNow,
       "alg_not_allowed"},
      {"alg missing", Craft(R"({"typ":"JWT"})", payload, "c2ln"), kNow, "malformed_token"},
      {"typ not JWT", Craft(R"({"alg":"HS256","typ":"xml"})", payload, "c2ln"), kNow,
       "malformed_token"},
      {"missing token", "", kNow, "missing_token"},
      {"garbage", "garbage", kNow, "malformed_token"},
      {"two segments", "abc.def", kNow, "malformed_token"},
      {"four segments", good + ".x", kNow, "malformed_token"},
      {"dots only", "..", kNow, "malformed_token"},
      {"header not json", Base64Url("nope") + "." + Base64Url(payload) + ".c2ln", kNow,
       "malformed_token"},
      {"header a json array", Craft("[1,2]", payload, "c2ln"), kNow, "malformed_token"},
      {"non-base64url characters", "e30+.e30/.c2ln", kNow, "malformed_token"},
      {"binary junk", std::string("\xff\xfe.\x01\x02.\x00", 7), kNow, "malformed_token"},
      {"oversize", std::string(9000, 'a'), kNow, "malformed_token"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Code(VerifyToken(c.token, kSecret, c.now)), c.expected) << c.name;
  }
}

// Claims problems only show once the signature verifies, so these tokens are signed properly
// (through libjwt directly, since MintToken only writes well-formed claims).
std::string SignedPayload(const std::string& payload_json) {
  jwt_t* raw = nullptr;
  EXPECT_EQ(jwt_new(&raw), 0);
  EXPECT_EQ(jwt_add_grants_json(raw, payload_json.c_str()), 0) << payload_json;
  EXPECT_EQ(jwt_set_alg(raw, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(kSecret.data()),
                        static_cast<int>(kSecret.size())),
            0);
  char* encoded = jwt_encode_str(raw);
  std::string token = encoded ? encoded : "";
  std::free(encoded);  // NOLINT
  jwt_free(raw);
  return token;
}

TEST(Jwt, ClaimProblems) {
  struct Case {
    const char* name;
    MintClaims claims;
    const char* expected;
  };
  const Case cases[] = {
      {"anon with tenant", {Role::kAnon, "acme", "", {}}, "ok"},
      {"authenticated without tenant", {Role::kAuthenticated, "", "u", {}}, "missing_tenant"},
      {"anon without tenant", {Role::kAnon, "", "", {}}, "missing_tenant"},
      {"service_role without tenant", {Role::kServiceRole, "", "svc", {}}, "ok"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Code(VerifyToken(Good(c.claims), kSecret, kNow)), c.expected) << c.name;
  }

  const std::string exp = std::to_string(kNow + 60);
  struct RawCase {
    std::string payload;
    const char* expected;
  };
  const RawCase raw_cases[] = {
      {R"({"role":"authenticated","tenant":"acme","exp":)" + exp + "}", "ok"},
      {R"({"role":"authenticated","tenant":"acme","exp":)" + exp + ".5}", "ok"},
      {R"({"tenant":"acme","exp":)" + exp + "}", "missing_role"},
      {R"({"role":"","tenant":"acme","exp":)" + exp + "}", "missing_role"},
      {R"({"role":"admin","tenant":"acme","exp":)" + exp + "}", "unknown_role"},
      {R"({"role":"Service_Role","exp":)" + exp + "}", "unknown_role"},
      {R"({"role":"authenticated","exp":)" + exp + "}", "missing_tenant"},
      {R"({"role":"authenticated","tenant":"","exp":)" + exp + "}", "missing_tenant"},
      {R"({"role":"authenticated","tenant":"acme"})", "missing_exp"},
      {R"({"role":"authenticated","tenant":"acme","exp":"tomorrow"})", "malformed_token"},
      {R"({"role":7,"tenant":"acme","exp":)" + exp + "}", "malformed_token"},
      {R"({"role":"authenticated","tenant":["acme"],"exp":)" + exp + "}", "malformed_token"},
      {R"({"role":"authenticated","tenant":"acme","exp":)" + exp + R"(,"nbf":"now"})",
       "malformed_token"},
      // Expiry is judged before the role: an expired token says so whatever else is wrong.
      {R"({"role":"admin","exp":)" + std::to_string(kNow - 100) + "}", "token_expired"},
  };
  for (const auto& c : raw_cases) {
    EXPECT_EQ(Code(VerifyToken(SignedPayload(c.payload), kSecret, kNow)), c.expected)
        << c.payload;
  }
  VerifyOptions no_exp;
  no_exp.require_exp = false;
  EXPECT_EQ(Code(VerifyToken(SignedPayload(R"({"role":"anon","tenant":"acme"})"), kSecret, kNow,
                             no_exp)),
            "ok");
}

TEST(Jwt, VerifyOptionsAreHonoured) {
  VerifyOptions strict;
  strict.leeway_seconds = 0;
  EXPECT_EQ(Code(VerifyToken(Good(), kSecret, kNow + 3600, strict)), "token_expired");
  EXPECT_EQ(Code(VerifyToken(Good(), kSecret, kNow + 3599, strict)), "ok");
  VerifyOptions small;
  small.max_token_bytes = 16;
  EXPECT_EQ(Code(VerifyToken(Good(), kSecret, kNow, small)), "malformed_token");
}

TEST(Jwt, EmptySecretIsAConfigurationError) {
  EXPECT_THROW((void)VerifyToken(Good(), "", kNow), std::invalid_argument);
  EXPECT_THROW((void)MintToken("", {}, kNow, seconds(60)), std::invalid_argument);
  EXPECT_THROW((void)MintToken(kSecret, {}, kNow, seconds(0)), std::invalid_argument);
}

TEST(Jwt, ExtractBearer) {
  EXPECT_EQ(ExtractBearer("Bearer abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(ExtractBearer("bearer   abc  "), "abc");
  EXPECT_EQ(ExtractBearer("BEARER\tabc"), "abc");
  EXPECT_EQ(ExtractBearer(""), std::nullopt);
  EXPECT_EQ(ExtractBearer("Bearer"), std::nullopt);
  EXPECT_EQ(ExtractBearer("Bearer "), std::nullopt);
  EXPECT_EQ(ExtractBearer("Bearerabc"), std::nullopt);
  EXPECT_EQ(ExtractBearer("Basic dXNlcjpwYXNz"), std::nullopt);
  EXPECT_EQ(ExtractBearer("Bearer a b"), std::nullopt);
}

TEST(Jwt, VerifyAuthorizationHeader) {
  const std::string header = "Bearer " + Good();
  EXPECT_EQ(Code(VerifyAuthorizationHeader(header, kSecret, kNow)), "ok");
  EXPECT_EQ(Code(VerifyAuthorizationHeader(std::nullopt, kSecret, kNow)), "missing_token");
  EXPECT_EQ(Code(VerifyAuthorizationHeader("", kSecret, kNow)), "missing_token");
  EXPECT_EQ(Code(VerifyAuthorizationHeader("Bearer ", kSecret, kNow)), "missing_token");
  EXPECT_EQ(Code(VerifyAuthorizationHeader("Basic dXNlcjpwYXNz", kSecret, kNow)),
            "malformed_token");
  EXPECT_EQ(Code(VerifyAuthorizationHeader("Bearer not-a-jwt", kSecret, kNow)), "malformed_token");
}

TEST(Jwt, TenantAccess) {
  Claims acme{Role::kAuthenticated, "acme", "u", kNow + 60, std::nullopt};
  EXPECT_EQ(CheckTenantAccess(acme, "acme"), std::nullopt);
  EXPECT_EQ(CheckTenantAccess(acme, "globex"), AuthError::kTenantMismatch);
  EXPECT_EQ(CheckTenantAccess(acme, ""), AuthError::kTenantMismatch);
  Claims anon{Role::kAnon, "acme", "", kNow + 60, std::nullopt};
  EXPECT_EQ(CheckTenantAccess(anon, "globex"), AuthError::kTenantMismatch);
  Claims service{Role::kServiceRole, "", "svc", kNow + 60, std::nullopt};
  EXPECT_EQ(CheckTenantAccess(service, "globex"), std::nullopt);
  EXPECT_EQ(CheckTenantAccess(service, "acme"), std::nullopt);
  EXPECT_EQ(HttpStatus(AuthError::kTenantMismatch), 403);
  EXPECT_EQ(HttpStatus(AuthError::kBadSignature), 401);
}

TEST(Jwt, ApiKey) {
  constexpr std::string_view kKey = "pk_live_publishable";
  EXPECT_EQ(CheckApiKey(std::string_view("pk_live_publishable"), kKey), std::nullopt);
  EXPECT_EQ(CheckApiKey(std::nullopt, kKey), AuthError::kMissingApikey);
  EXPECT_EQ(CheckApiKey(std::string_view(""), kKey), AuthError::kMissingApikey);
  EXPECT_EQ(CheckApiKey(std::string_view("pk_live_publishabl"), kKey), AuthError::kBadApikey);
  EXPECT_EQ(CheckApiKey(std::string_view("pk_live_publishablE"), kKey), AuthError::kBadApikey);
  EXPECT_EQ(CheckApiKey(std::string_view("pk_live_publishable "), kKey), AuthError::kBadApikey);
  EXPECT_THROW((void)CheckApiKey(std::string_view("x"), ""), std::invalid_argument);
}

TEST(Jwt, ErrorTextsNeverCarryTheSecret) {
  for (int i = 0; i <= static_cast<int>(AuthError::kBadApikey); ++i) {
    const auto error = static_cast<AuthError>(i);
    EXPECT_FALSE(ToString(error).empty());
    EXPECT_EQ(Describe(error).find(kSecret), std::string_view::npos);
  }
  try {
    (void)VerifyToken("x", "", kNow);
  } catch (const std::exception& e) {
    EXPECT_EQ(std::string(e.what()).find("test-secret"), std::string::npos);
  }
}

TEST(Jwt, MintDevToken) {
  const std::string token = MintDevToken(kSecret, "service_role", "", "cli", seconds(60));
  const auto now = std::chrono::duration_cast<seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto result = VerifyToken(token, kSecret, now);
  ASSERT_TRUE(result.ok()) << Code(result);
  EXPECT_EQ(result.claims().role, Role::kServiceRole);
  EXPECT_EQ(result.claims().sub, "cli");
  EXPECT_THROW((void)MintDevToken(kSecret, "admin", "acme"), std::invalid_argument);
}

}  // namespace
}  // namespace cogo::auth
