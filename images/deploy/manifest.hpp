#pragma once
// The signed manifest of a rootfs image, as `lab image rootfs` writes it (manifest.sig: an
// envelope of kind "manifest" whose payload is manifest.json's bytes).

#include "shared/crypto/bytes.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/errors/error.hpp"

#include <cstdint>
#include <string>

namespace lab::images::deploy {

struct RootfsManifest {
  std::string name;
  std::string kernel_version;
  std::string architecture;
  std::uint64_t installed_size = 0;  // bytes the tree needs on disk
  std::string file;                  // "rootfs.tar.zst", beside the manifest
  std::uint64_t size = 0;            // of `file`
  std::string sha256;                // of `file`, lower-case hex
};

/// Opens the envelope with the appliance's key (kind "manifest") and reads the payload as a
/// rootfs manifest. DeployError::bad_manifest naming what is wrong otherwise: a signature by
/// another key, an agent-OS manifest, a missing field, a file name that is not a plain name.
Result<RootfsManifest> open_manifest(shared::crypto::ByteView envelope,
                                     const shared::crypto::Ed25519PublicKey& appliance);

}  // namespace lab::images::deploy
