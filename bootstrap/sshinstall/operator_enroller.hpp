#pragma once
// The installer's Enroller over the coordinator's operator API (HTTPS, bearer token, pinned CA).
#include "bootstrap/sshinstall/installer.hpp"
#include "shared/http/client/client.hpp"

#include <chrono>

namespace lab::bootstrap::sshinstall {

class OperatorEnroller final : public Enroller {
 public:
  /// `client` carries the server URL, CA and operator token; one libcurl client is made per
  /// call, so the enroller may be shared by the rollout's worker threads.
  OperatorEnroller(shared::http::ClientOptions client, std::chrono::seconds token_ttl,
                   std::string description);

  Result<Minted> mint(const std::string& host, const shared::labels::LabelSet& labels) override;
  Result<void> revoke_token(const std::string& token_id) override;
  Result<std::string> token_node(const std::string& token_id) override;
  Result<bool> node_active(const std::string& node_id) override;
  Result<void> revoke_node(const std::string& node_id) override;

 private:
  Result<shared::http::ClientResponse> call(std::string_view method, const std::string& path,
                                            const std::string& body = {});
  shared::http::ClientOptions client_;
  std::chrono::seconds token_ttl_;
  std::string description_;
};

}  // namespace lab::bootstrap::sshinstall
