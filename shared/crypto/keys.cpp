#include "shared/crypto/keys.hpp"

#include "shared/crypto/aead.hpp"
#include "shared/crypto/detail/openssl.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"

#include <cstdlib>

namespace lab::shared::crypto {
namespace {

constexpr std::uint8_t kSealVersion = 1;
constexpr std::string_view kSealInfo = "lab sealed box v1";

Result<std::shared_ptr<EVP_PKEY>> generate_key(int type, const char* what) {
  detail::PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return detail::openssl_error(CryptoError::openssl_failed, what);
  }
  return detail::share(detail::PkeyPtr(raw));
}

Result<std::shared_ptr<EVP_PKEY>> raw_key(int type, bool is_private, ByteView raw,
                                          const char* what) {
  if (raw.size() != 32) {
    return Error(CryptoError::invalid_key,
                 std::string(what) + ": expected 32 bytes, got " + std::to_string(raw.size()));
  }
  EVP_PKEY* k = is_private ? EVP_PKEY_new_raw_private_key(type, nullptr, raw.data(), raw.size())
                           : EVP_PKEY_new_raw_public_key(type, nullptr, raw.data(), raw.size());
  if (k == nullptr)
    return detail::openssl_error(CryptoError::invalid_key, what);
  return detail::share(detail::PkeyPtr(k));
}

std::array<std::uint8_t, 32> public_raw(EVP_PKEY* key) {
  std::array<std::uint8_t, 32> out{};
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(key, out.data(), &len) != 1 || len != out.size())
    std::abort();
  return out;
}

SecretBytes private_raw(EVP_PKEY* key) {
  SecretBytes out(32);
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_private_key(key, out.data(), &len) != 1 || len != out.size())
    std::abort();
  return out;
}

std::shared_ptr<EVP_PKEY> public_only(int type, EVP_PKEY* key) {
  auto raw = public_raw(key);
  EVP_PKEY* k = EVP_PKEY_new_raw_public_key(type, nullptr, raw.data(), raw.size());
  if (k == nullptr)
    std::abort();
  return detail::share(detail::PkeyPtr(k));
}

Result<SecretBytes> x25519_agree(EVP_PKEY* mine, EVP_PKEY* theirs) {
  detail::PkeyCtxPtr ctx(EVP_PKEY_CTX_new(mine, nullptr));
  std::size_t len = 32;
  SecretBytes shared(len);
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), theirs) != 1 ||
      EVP_PKEY_derive(ctx.get(), shared.data(), &len) != 1 || len != 32) {
    return detail::openssl_error(CryptoError::decrypt_failed, "X25519 key agreement");
  }
  // All-zero output means a low-order point was supplied: refuse it.
  static const std::array<std::uint8_t, 32> kZero{};
  if (constant_time_equal(shared, kZero)) {
    return Error(CryptoError::invalid_key, "X25519: low-order public key");
  }
  return shared;
}

// Key (32) and nonce (12) for one sealed box, bound to both public keys.
Result<SecretBytes> seal_keys(ByteView shared, ByteView eph_pub, ByteView recipient_pub) {
  Bytes salt(eph_pub.begin(), eph_pub.end());
  salt.insert(salt.end(), recipient_pub.begin(), recipient_pub.end());
  return hkdf_sha256(shared, salt, as_bytes(kSealInfo), 32 + 12);
}

}  // namespace

// ---- Ed25519 --------------------------------------------------------------------------------

Result<Ed25519PublicKey> Ed25519PublicKey::from_raw(ByteView raw) {
  LAB_TRY_ASSIGN(auto key, raw_key(EVP_PKEY_ED25519, false, raw, "Ed25519 public key"));
  return Ed25519PublicKey(std::move(key));
}

std::array<std::uint8_t, 32> Ed25519PublicKey::raw() const {
  return public_raw(key_.get());
}

bool Ed25519PublicKey::verify(ByteView message, ByteView signature) const {
  if (signature.size() != 64)
    return false;
  detail::MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1) {
    detail::clear_errors();
    return false;
  }
  const bool ok = EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                                   message.size()) == 1;
  detail::clear_errors();
  return ok;
}

std::string Ed25519PublicKey::key_id() const {
  const auto r = raw();
  const Digest d = sha256(ByteView(r));
  return hex_encode(ByteView(d).first(8));
}

Result<Ed25519PrivateKey> Ed25519PrivateKey::generate() {
  LAB_TRY_ASSIGN(auto key, generate_key(EVP_PKEY_ED25519, "Ed25519 keygen"));
  return Ed25519PrivateKey(std::move(key));
}

Result<Ed25519PrivateKey> Ed25519PrivateKey::from_seed(ByteView seed) {
  LAB_TRY_ASSIGN(auto key, raw_key(EVP_PKEY_ED25519, true, seed, "Ed25519 private key"));
  return Ed25519PrivateKey(std::move(key));
}

SecretBytes Ed25519PrivateKey::seed() const {
  return private_raw(key_.get());
}

Ed25519PublicKey Ed25519PrivateKey::public_key() const {
  return Ed25519PublicKey(public_only(EVP_PKEY_ED25519, key_.get()));
}

Signature Ed25519PrivateKey::sign(ByteView message) const {
  Signature sig{};
  std::size_t len = sig.size();
  detail::MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1 ||
      len != sig.size()) {
    std::abort();  // signing with a valid in-memory key cannot fail short of OOM
  }
  return sig;
}

// ---- X25519 ---------------------------------------------------------------------------------

Result<X25519PublicKey> X25519PublicKey::from_raw(ByteView raw) {
  LAB_TRY_ASSIGN(auto key, raw_key(EVP_PKEY_X25519, false, raw, "X25519 public key"));
  return X25519PublicKey(std::move(key));
}

std::array<std::uint8_t, 32> X25519PublicKey::raw() const {
  return public_raw(key_.get());
}

Result<X25519PrivateKey> X25519PrivateKey::generate() {
  LAB_TRY_ASSIGN(auto key, generate_key(EVP_PKEY_X25519, "X25519 keygen"));
  return X25519PrivateKey(std::move(key));
}

Result<X25519PrivateKey> X25519PrivateKey::from_raw(ByteView raw) {
  LAB_TRY_ASSIGN(auto key, raw_key(EVP_PKEY_X25519, true, raw, "X25519 private key"));
  return X25519PrivateKey(std::move(key));
}

SecretBytes X25519PrivateKey::raw() const {
  return private_raw(key_.get());
}

X25519PublicKey X25519PrivateKey::public_key() const {
  return X25519PublicKey(public_only(EVP_PKEY_X25519, key_.get()));
}

// ---- Sealed box -----------------------------------------------------------------------------

Result<Bytes> seal(const X25519PublicKey& to, ByteView plaintext, ByteView aad) {
  LAB_TRY_ASSIGN(X25519PrivateKey eph, X25519PrivateKey::generate());
  const auto eph_pub = eph.public_key().raw();
  const auto to_pub = to.raw();
  LAB_TRY_ASSIGN(SecretBytes shared, x25519_agree(eph.native(), to.native()));
  LAB_TRY_ASSIGN(SecretBytes km, seal_keys(shared, eph_pub, to_pub));
  LAB_TRY_ASSIGN(Bytes body, aes256gcm_encrypt(ByteView(km).first(32), ByteView(km).subspan(32, 12),
                                               plaintext, aad));
  Bytes out;
  out.reserve(1 + eph_pub.size() + body.size());
  out.push_back(kSealVersion);
  out.insert(out.end(), eph_pub.begin(), eph_pub.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Result<SecretBytes> open(const X25519PrivateKey& key, ByteView sealed, ByteView aad) {
  if (sealed.size() < kSealOverhead) {
    return Error(CryptoError::bad_length, "sealed box: " + std::to_string(sealed.size()) +
                                              " bytes, at least " + std::to_string(kSealOverhead) +
                                              " expected");
  }
  if (sealed[0] != kSealVersion) {
    return Error(CryptoError::decrypt_failed,
                 "sealed box: unknown version " + std::to_string(sealed[0]));
  }
  const ByteView eph_raw = sealed.subspan(1, 32);
  LAB_TRY_ASSIGN(X25519PublicKey eph, X25519PublicKey::from_raw(eph_raw));
  const auto my_pub = key.public_key().raw();
  LAB_TRY_ASSIGN(SecretBytes shared, x25519_agree(key.native(), eph.native()));
  LAB_TRY_ASSIGN(SecretBytes km, seal_keys(shared, eph_raw, my_pub));
  return aes256gcm_decrypt(ByteView(km).first(32), ByteView(km).subspan(32, 12), sealed.subspan(33),
                           aad);
}

}  // namespace lab::shared::crypto
