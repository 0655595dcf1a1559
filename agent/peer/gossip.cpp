#include "agent/peer/gossip.hpp"

#include <fmt/format.h>

namespace lab::agent::peer {

const boost::system::error_category& gossip_category() noexcept {
  static const ErrorCategory<GossipError> kCategory("lab.gossip",
                                                    [](GossipError e) noexcept -> const char* {
                                                      switch (e) {
                                                        case GossipError::no_partner:
                                                          return "no gossip partner";
                                                        case GossipError::oversized:
                                                          return "fleet envelope too large";
                                                        case GossipError::bad_envelope:
                                                          return "fleet envelope refused";
                                                        case GossipError::revision_mismatch:
                                                          return "fleet envelope revision mismatch";
                                                      }
                                                      return "gossip error";
                                                    });
  return kCategory;
}

Gossip::Gossip(VerifyFleet verify, GossipOptions options)
    : verify_(std::move(verify)), options_(options) {}

void Gossip::on_adopted(Adopted adopted) {
  const std::lock_guard lock(mu_);
  adopted_ = std::move(adopted);
}

void Gossip::set_partners(std::vector<shared::protocol::Peer> partners) {
  const std::lock_guard lock(mu_);
  partners_ = std::move(partners);
}

Result<bool> Gossip::adopt(shared::crypto::ByteView envelope, std::int64_t claimed,
                           const std::string& from_node) {
  if (envelope.size() > options_.max_envelope) {
    return Error(GossipError::oversized,
                 fmt::format("{} bytes, at most {}", envelope.size(), options_.max_envelope));
  }
  if (claimed <= revision())
    return false;  // not newer: no signature check spent on it
  auto fleet = verify_(envelope);
  if (!fleet)
    return Error(GossipError::bad_envelope, fleet.error().message());
  if (fleet->revision != claimed) {
    return Error(GossipError::revision_mismatch,
                 fmt::format("claimed {}, signed {}", claimed, fleet->revision));
  }
  Held held{shared::crypto::Bytes(envelope.begin(), envelope.end()), std::move(*fleet)};
  Adopted call;
  {
    const std::lock_guard lock(mu_);
    if (held_ && held_->fleet.revision >= held.fleet.revision)
      return false;  // a newer one came in meanwhile
    revoked_serials_ = {held.fleet.revoked_serials.begin(), held.fleet.revoked_serials.end()};
    revoked_nodes_ = {held.fleet.revoked_nodes.begin(), held.fleet.revoked_nodes.end()};
    held_ = held;
    call = adopted_;
  }
  if (call)
    call(held, from_node);
  return true;
}

Result<bool> Gossip::offer(shared::crypto::ByteView envelope, const std::string& from_node) {
  if (envelope.size() > options_.max_envelope) {
    return Error(GossipError::oversized,
                 fmt::format("{} bytes, at most {}", envelope.size(), options_.max_envelope));
  }
  auto fleet = verify_(envelope);
  if (!fleet)
    return Error(GossipError::bad_envelope, fleet.error().message());
  return adopt(envelope, fleet->revision, from_node);
}

Result<RoundOutcome> Gossip::round(FleetTransport& transport, std::mt19937_64& rng) {
  shared::protocol::Peer partner;
  std::int64_t mine = 0;
  {
    const std::lock_guard lock(mu_);
    std::vector<const shared::protocol::Peer*> live;
    for (const auto& p : partners_) {
      if (!revoked_nodes_.contains(p.node_id))
        live.push_back(&p);
    }
    if (live.empty())
      return Error(GossipError::no_partner, "no partner listed in the last bundle");
    partner = *live[std::uniform_int_distribution<std::size_t>(0, live.size() - 1)(rng)];
    mine = held_ ? held_->fleet.revision : 0;
  }
  RoundOutcome out;
  out.partner = partner;
  LAB_TRY_ASSIGN(FleetMessage answer, transport.exchange(partner, FleetMessage{mine, {}}));
  if (answer.envelope) {
    LAB_TRY_ASSIGN(out.learned, adopt(*answer.envelope, answer.revision, partner.node_id));
  } else if (answer.revision < mine) {
    auto ours = held();
    if (ours) {
      LAB_TRY(transport.exchange(partner, FleetMessage{ours->fleet.revision, ours->envelope}));
      out.pushed = true;
    }
  }
  out.revision = revision();
  return out;
}

Result<FleetMessage> Gossip::answer(const FleetMessage& message, const std::string& from_node) {
  if (message.envelope)
    LAB_TRY(adopt(*message.envelope, message.revision, from_node));
  const std::lock_guard lock(mu_);
  FleetMessage out{held_ ? held_->fleet.revision : 0, std::nullopt};
  if (held_ && held_->fleet.revision > message.revision)
    out.envelope = held_->envelope;
  return out;
}

std::int64_t Gossip::revision() const {
  const std::lock_guard lock(mu_);
  return held_ ? held_->fleet.revision : 0;
}

std::optional<Gossip::Held> Gossip::held() const {
  const std::lock_guard lock(mu_);
  return held_;
}

bool Gossip::revoked_serial(std::string_view serial) const {
  const std::lock_guard lock(mu_);
  return revoked_serials_.contains(std::string(serial));
}

bool Gossip::revoked_node(std::string_view node_id) const {
  const std::lock_guard lock(mu_);
  return revoked_nodes_.contains(std::string(node_id));
}

}  // namespace lab::agent::peer
