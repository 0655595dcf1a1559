#include "bootstrap/coordinator/identity.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/random.hpp"
#include "shared/protocol/protocol.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace lab::bootstrap::coordinator {
namespace {

namespace cr = shared::crypto;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr unsigned kPrivateMode = 0600;
constexpr unsigned kPublicMode = 0644;
constexpr auto kCaValidity = std::chrono::hours(24 * 365 * 10);
constexpr auto kServerValidity = std::chrono::hours(24 * 365);
// Clocks of freshly booted machines are often a little behind.
constexpr auto kBackdate = 5min;

Error identity_error(const std::string& what, const Error& cause) {
  return {CoordinatorError::store_failed, what + ": " + cause.message()};
}

Result<std::optional<std::string>> read_optional(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    return std::optional<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error(CoordinatorError::store_failed, "cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::optional<std::string>(ss.str());
}

bool is_ip_address(const std::string& name) {
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, name.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, name.c_str(), buf.data()) == 1;
}

std::string joined_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty())
      out += ',';
    out += n;
  }
  return out;
}

using ServerPair = std::pair<cr::EcPrivateKey, cr::Certificate>;

Result<ServerPair> make_server_cert(const Options& options, const cr::EcPrivateKey& ca_key,
                                    const cr::Certificate& ca_cert) {
  auto key = cr::EcPrivateKey::generate();
  if (!key)
    return identity_error("server key", key.error());
  cr::CertificateSpec spec;
  spec.common_name = options.server_names.empty() ? "lab coordinator" : options.server_names[0];
  for (const auto& name : options.server_names) {
    (is_ip_address(name) ? spec.ip_addresses : spec.dns_names).push_back(name);
  }
  const auto now = options.clock();
  spec.not_before = now - kBackdate;
  spec.not_after = now + kServerValidity;
  spec.usage = cr::CertUsage::server;
  auto cert = cr::issue_certificate(ca_key, ca_cert, key->public_key_der(), spec);
  if (!cert)
    return identity_error("server certificate", cert.error());
  LAB_TRY(write_file_atomic(options.data_dir / "server.key", key->to_pem(), kPrivateMode));
  LAB_TRY(write_file_atomic(options.data_dir / "server.pem", cert->pem(), kPublicMode));
  return ServerPair{std::move(*key), std::move(*cert)};
}

Result<cr::EcPrivateKey> load_ec_key(const fs::path& path) {
  LAB_TRY_ASSIGN(auto text, read_optional(path));
  if (!text)
    return Error(CoordinatorError::store_failed, path.string() + " is missing");
  auto key = cr::EcPrivateKey::from_pem(*text);
  if (!key)
    return identity_error(path.string(), key.error());
  return std::move(*key);
}

Result<cr::Certificate> load_cert(const fs::path& path) {
  LAB_TRY_ASSIGN(auto text, read_optional(path));
  if (!text)
    return Error(CoordinatorError::store_failed, path.string() + " is missing");
  auto cert = cr::Certificate::from_pem(*text);
  if (!cert)
    return identity_error(path.string(), cert.error());
  return std::move(*cert);
}

// The CA key and certificate: read when both exist, otherwise a new CA. `created` says which.
Result<std::pair<cr::EcPrivateKey, cr::Certificate>> ca(const Options& options, bool& created) {
  const fs::path key_path = options.data_dir / "ca.key";
  const fs::path cert_path = options.data_dir / "ca.pem";
  std::error_code ec;
  if (fs::exists(key_path, ec) && fs::exists(cert_path, ec)) {
    LAB_TRY_ASSIGN(auto key, load_ec_key(key_path));
    LAB_TRY_ASSIGN(auto cert, load_cert(cert_path));
    created = false;
    return std::pair{std::move(key), std::move(cert)};
  }
  auto key = cr::EcPrivateKey::generate();
  if (!key)
    return identity_error("CA key", key.error());
  cr::CertificateSpec spec;
  spec.common_name = "lab coordinator CA";
  const auto now = options.clock();
  spec.not_before = now - kBackdate;
  spec.not_after = now + kCaValidity;
  spec.usage = cr::CertUsage::ca;
  auto cert = cr::self_signed_ca(*key, spec);
  if (!cert)
    return identity_error("CA certificate", cert.error());
  LAB_TRY(write_file_atomic(key_path, key->to_pem(), kPrivateMode));
  LAB_TRY(write_file_atomic(cert_path, cert->pem(), kPublicMode));
  created = true;
  return std::pair{std::move(*key), std::move(*cert)};
}

// A base64url file holding `size` random bytes, created when absent.
Result<cr::SecretBytes> random_key_file(const fs::path& path, std::size_t size) {
  LAB_TRY_ASSIGN(auto text, read_optional(path));
  if (text) {
    while (!text->empty() && (text->back() == '\n' || text->back() == '\r'))
      text->pop_back();
    auto raw = cr::base64url_decode(*text);
    cr::cleanse(text->data(), text->size());
    if (!raw || raw->size() != size) {
      return Error(CoordinatorError::store_failed,
                   path.string() + ": expected " + std::to_string(size) + " bytes of base64url");
    }
    cr::SecretBytes out(raw->begin(), raw->end());
    cr::cleanse(raw->data(), raw->size());
    return out;
  }
  auto raw = cr::random_bytes(size);
  if (!raw)
    return identity_error("random key", raw.error());
  std::string encoded = cr::base64url_encode(*raw) + "\n";
  auto written = write_file_atomic(path, encoded, kPrivateMode);
  cr::cleanse(encoded.data(), encoded.size());
  if (!written)
    return written.error();
  cr::SecretBytes out(raw->begin(), raw->end());
  cr::cleanse(raw->data(), raw->size());
  return out;
}

Result<void> operator_token(const Options& options, Store& store, Identity& id) {
  const fs::path path = options.data_dir / "operator.token";
  LAB_TRY_ASSIGN(auto text, read_optional(path));
  std::string token;
  if (text) {
    token = *text;
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r'))
      token.pop_back();
  } else {
    auto bytes = cr::random_bytes(32);
    if (!bytes)
      return identity_error("operator token", bytes.error());
    token = "lab-op-" + cr::base64url_encode(*bytes);
    LAB_TRY(write_file_atomic(path, token + "\n", kPrivateMode));
  }
  id.operator_token_sha256 = cr::sha256(token);
  cr::cleanse(token.data(), token.size());
  const std::string hex = cr::hex_encode(id.operator_token_sha256);
  LAB_TRY_ASSIGN(auto stored, store.meta("operator_token_sha256"));
  if (!stored || *stored != hex) {
    LAB_TRY_ASSIGN(auto tx, store.begin());
    LAB_TRY(store.set_meta("operator_token_sha256", hex));
    if (auto r = tx.commit(); !r)
      return store_error(r.error());
  }
  return {};
}

}  // namespace

Result<void> write_file_atomic(const fs::path& path, std::string_view content, unsigned mode) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return Error(CoordinatorError::store_failed, errno_error("open " + tmp.string()).message());
  // The umask may have narrowed the mode; a public file must stay readable.
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    ok = n > 0;
    if (ok)
      done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  Error failure = errno_error("write " + tmp.string());
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return Error(CoordinatorError::store_failed, failure.message());
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Error(CoordinatorError::store_failed, errno_error("rename " + path.string()).message());
  }
  const int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
}

Result<Identity> load_or_create_identity(const Options& options, Store& store) {
  bool new_ca = false;
  LAB_TRY_ASSIGN(auto ca_pair, ca(options, new_ca));
  auto bundle_seed = random_key_file(options.data_dir / "bundle.key", 32);
  if (!bundle_seed)
    return bundle_seed.error();
  auto bundle_key = cr::Ed25519PrivateKey::from_seed(*bundle_seed);
  if (!bundle_key)
    return identity_error("bundle.key", bundle_key.error());
  LAB_TRY_ASSIGN(auto secrets_key, random_key_file(options.data_dir / "secrets.key", 32));

  // The server certificate follows the CA and the configured names.
  const std::string names = joined_names(options.server_names);
  LAB_TRY_ASSIGN(auto stored_names, store.meta("server_names"));
  std::optional<ServerPair> server;
  std::error_code ec;
  if (!new_ca && stored_names && *stored_names == names &&
      fs::exists(options.data_dir / "server.key", ec) &&
      fs::exists(options.data_dir / "server.pem", ec)) {
    LAB_TRY_ASSIGN(auto key, load_ec_key(options.data_dir / "server.key"));
    LAB_TRY_ASSIGN(auto cert, load_cert(options.data_dir / "server.pem"));
    // Re-issue a certificate that is not ours or expires within a month.
    if (cr::verify_certificate(cert, ca_pair.second, options.clock() + 24h * 30))
      server.emplace(std::move(key), std::move(cert));
  }
  if (!server) {
    LAB_TRY_ASSIGN(auto fresh, make_server_cert(options, ca_pair.first, ca_pair.second));
    server.emplace(std::move(fresh));
    LAB_TRY_ASSIGN(auto tx, store.begin());
    LAB_TRY(store.set_meta("server_names", names));
    if (auto r = tx.commit(); !r)
      return store_error(r.error());
  }

  Identity id{std::move(ca_pair.first),
              std::move(ca_pair.second),
              std::move(server->first),
              std::move(server->second),
              std::move(*bundle_key),
              std::move(secrets_key),
              {},
              {}};
  id.ca_pin = cr::spki_pin(id.ca_cert.public_key_der());
  LAB_TRY(operator_token(options, store, id));
  return id;
}

}  // namespace lab::bootstrap::coordinator
