#include "agent/boot/boot.hpp"

#include "agent/boot/cmdline.hpp"
#include "agent/boot/progress.hpp"
#include "agent/daemon/node.hpp"
#include "agent/daemon/run.hpp"
#include "agent/facts/facts.hpp"
#include "agent/files/atomic_file.hpp"
#include "agent/sync/syncer.hpp"
#include "shared/crypto/random.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <array>
#include <memory>
#include <thread>

namespace lab::agent::boot {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kDiscovered = "discovered";

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One line per step, flushed at once: the serial console is read while the machine boots.
class Console {
 public:
  explicit Console(std::FILE* out) : out_(out) {}
  template <class... Args>
  void line(fmt::format_string<Args...> f, Args&&... args) const {
    std::string text = fmt::format(f, std::forward<Args>(args)...);
    for (char& c : text) {
      if (c == '\n' || c == '\r')
        c = ' ';
    }
    fmt::print(out_, "{}{}\n", kConsolePrefix, text);
    (void)std::fflush(out_);  // nothing better to do when the console is gone
  }

 private:
  std::FILE* out_;
};

// The machine's name when it has no host name of its own (an initramfs has none): derived
// from the boot MAC, so the operator can tell which machine `lab node accept` is about.
std::string boot_hostname(const std::string& mac) {
  std::array<char, 256> buf{};
  std::string name;
  if (::gethostname(buf.data(), buf.size() - 1) == 0)
    name = buf.data();
  if (!name.empty() && name != "(none)" && name != "localhost" && name != "localhost.localdomain")
    return name;
  if (mac.empty())
    return {};
  std::string hex;
  for (const char c : mac) {
    if (c != ':')
      hex += c;
  }
  return "pxe-" + hex;
}

// The data key needs somewhere safe to live. A TPM device when there is one; otherwise a file
// in the (RAM) data directory, which protects nothing against whoever holds the machine, so it
// is said on the console.
void choose_protection(daemon::Settings& s, const Console& console) {
  constexpr std::string_view kDevice = "device:";
  if (s.key_protection == keystore::Protection::tpm && s.tcti.starts_with(kDevice)) {
    std::error_code ec;
    const std::filesystem::path dev = s.tcti.substr(kDevice.size());
    if (!std::filesystem::exists(dev, ec)) {
      s.key_protection = keystore::Protection::file;
      console.line("no TPM ({}): node keys kept in a file under {} (degraded)", dev.string(),
                   s.data_dir.string());
      return;
    }
  }
  if (s.key_protection == keystore::Protection::file) {
    console.line("key_protection=file: node keys kept in a file under {} (degraded)",
                 s.data_dir.string());
  }
}

// The Syncer owns its transport; this one forwards to a transport the boot flow keeps too, so
// the polls and the ready report share one TLS connection.
class SharedTransport final : public sync::Transport {
 public:
  explicit SharedTransport(std::shared_ptr<sync::Transport> t) : t_(std::move(t)) {}
  Result<sync::PollAnswer> fetch_bundle(std::int64_t since, std::chrono::seconds wait,
                                        std::optional<std::int64_t> kept_since) override {
    return t_->fetch_bundle(since, wait, kept_since);
  }
  Result<std::string> renew(std::string_view csr_pem) override { return t_->renew(csr_pem); }
  Result<std::string> renew_with_proof(const shared::protocol::RenewRequest& request) override {
    return t_->renew_with_proof(request);
  }
  Result<void> report(std::string_view state, const boost::json::object& facts) override {
    return t_->report(state, facts);
  }
  [[nodiscard]] std::optional<std::chrono::seconds> retry_after() const override {
    return t_->retry_after();
  }

 private:
  std::shared_ptr<sync::Transport> t_;
};

std::string one_line(const Error& e) {
  std::string text = e.message();
  if (auto h = daemon::hint(e); !h.empty())
    text += "; " + h;
  return text;
}

class BootRun {
 public:
  BootRun(daemon::Settings s, const BootOptions& o)
      : s_(std::move(s)), o_(o), console_(o.console) {}

  int run() {
    auto text = files::read_file(o_.cmdline, kMaxCmdline);
    if (!text)
      return fail(Error(BootError::cmdline_unreadable, text.error().message()));
    const ReportTarget target = report_target(*text);
    progress_ = ProgressReporter(target.server, target.mac);
    auto params = parse_cmdline(*text);
    if (!params)
      return fail(params.error());
    p_ = std::move(*params);
    mac_ = p_.mac;
    if (mac_.empty()) {
      for (const auto& nic : facts::read_nics(o_.facts_root)) {
        if (!nic.mac.empty() && nic.mac != "00:00:00:00:00:00") {
          mac_ = nic.mac;
          break;
        }
      }
    }
    progress_.set_mac(mac_);
    choose_protection(s_, console_);

    console_.line("joining {} as {}", p_.join.url, mac_.empty() ? "(no MAC)" : mac_);
    (void)progress_.report("joining", p_.join.url);  // the recorder's loss only
    if (auto joined = join(); !joined)
      return fail(joined.error());

    auto opened = daemon::open_node(s_);
    if (!opened)
      return fail(opened.error());
    auto view = opened->cache->view();
    if (!view)
      return fail(view.error());
    const cache::Identity& id = opened->identity;
    std::string state = view->revision > 0 ? view->state : id.state;
    console_.line("joined node={} state={}", id.node_id, state);

    transport_ = std::shared_ptr<sync::Transport>(sync::make_http_transport(id, s_.poll_wait));
    transport_certificate_ = id.certificate_pem;
    if (state == kDiscovered)
      console_.line("waiting for the operator (lab node accept {})", id.name);
    auto accepted = wait_for_view(*opened->cache, view->revision, state);
    if (!accepted)
      return fail(accepted.error());
    if (auto r = report_ready(*transport_, opened->key->protection_fact()); !r)
      return fail(r.error());
    console_.line("ready node={}", id.node_id);

    transport_.reset();
    opened->cache.reset();
    opened->key.reset();
    if (!o_.serve)
      return 0;
    // From here on the agent OS runs the agent exactly as an installed host does.
    return daemon::run(s_);
  }

 private:
  int fail(const Error& e) {
    const std::string reason = one_line(e);
    console_.line("failed: {}", reason);
    (void)progress_.report("failed", reason);
    return 1;
  }

  // A node already joined to this coordinator (labd boot started again in the same boot: the
  // token is spent) goes on with its identity; any other node in the data directory is an error.
  Result<void> join() {
    LAB_TRY_ASSIGN(auto record, daemon::read_node_record(s_));
    if (record) {
      if (record->coordinator_url != p_.join.url) {
        return Error(BootError::already_joined,
                     fmt::format("{} holds node {} of {}", s_.data_dir.string(), record->node_id,
                                 record->coordinator_url));
      }
      return {};
    }
    daemon::JoinOptions jo;
    jo.join_string = p_.join_text;
    jo.timeout = o_.join_timeout;
    jo.facts_root = o_.facts_root;
    jo.hostname = boot_hostname(mac_);
    LAB_TRY(daemon::join(s_, jo));
    return {};
  }

  // Polls the node's bundle until it has one and the node is no longer waiting for the
  // operator (`lab node accept`, or an auto-accept selector at join). A fresh node's first poll
  // (since=0) answers at once; while discovered, each poll is a long-poll the acceptance ends.
  Result<void> wait_for_view(cache::Cache& cache, std::int64_t revision, std::string& state) {
    sync::SyncOptions so;
    so.wait = s_.poll_wait;
    so.report_state.clear();  // the ready report is sent below, once accepted
    so.backoff = {std::chrono::duration_cast<std::chrono::milliseconds>(s_.backoff_initial),
                  std::chrono::duration_cast<std::chrono::milliseconds>(s_.backoff_cap)};
    sync::SyncHooks hooks;
    hooks.applied = [&](const cache::View& v) { state = v.state; };
    sync::Syncer syncer(
        cache,
        [this](const cache::Identity& id) {
          // After a renewal the shared connection must present the new certificate: the
          // coordinator revokes the old one as soon as it sees the new one.
          if (id.certificate_pem != transport_certificate_) {
            transport_ =
                std::shared_ptr<sync::Transport>(sync::make_http_transport(id, s_.poll_wait));
            transport_certificate_ = id.certificate_pem;
          }
          return std::make_unique<SharedTransport>(transport_);
        },
        so, hooks, unix_now);
    unsigned failures = 0;
    bool have_bundle = revision > 0;
    while (!have_bundle || state == kDiscovered) {
      // An operator may take days; the certificate must outlive the wait. A failed renewal is
      // retried next round and shows up as a refused poll once the certificate has expired.
      (void)syncer.renew_if_due();
      const auto started = std::chrono::steady_clock::now();
      auto r = syncer.poll_once();
      if (r) {
        failures = 0;
        have_bundle = have_bundle || r->has_value();
        // A coordinator that answers "nothing new" at once must not make this a busy loop.
        const auto took = std::chrono::steady_clock::now() - started;
        if (!r->has_value() && took < 1s)
          std::this_thread::sleep_for(1s - took);
        continue;
      }
      if (r.error() == sync::SyncError::forbidden) {
        return Error(
            BootError::waiting_failed,
            "the coordinator refuses this node's certificate (revoked?): " + r.error().detail());
      }
      const auto delay = so.backoff.delay(failures, shared::crypto::random_u64());
      if (failures < 64)
        ++failures;
      std::this_thread::sleep_for(delay);
    }
    return {};
  }

  // Retried while the coordinator is unreachable: "ready" on the console means it arrived.
  Result<void> report_ready(sync::Transport& t, std::string_view key_protection) {
    const auto facts = daemon::node_facts(o_.facts_root, key_protection);
    const sync::Backoff backoff{
        std::chrono::duration_cast<std::chrono::milliseconds>(s_.backoff_initial),
        std::chrono::duration_cast<std::chrono::milliseconds>(s_.backoff_cap)};
    for (unsigned attempt = 0;; ++attempt) {
      auto r = t.report("ready", facts);
      if (r)
        return {};
      if (r.error() != sync::SyncError::unreachable || attempt >= 64)
        return Error(BootError::report_failed, r.error().message());
      std::this_thread::sleep_for(backoff.delay(attempt, shared::crypto::random_u64()));
    }
  }

  daemon::Settings s_;
  const BootOptions& o_;
  Console console_;
  ProgressReporter progress_{"", ""};
  BootParams p_;
  std::string mac_;
  // Shared by the polls of wait_for_view and the ready report, made for this certificate.
  std::shared_ptr<sync::Transport> transport_;
  std::string transport_certificate_;
};

}  // namespace

int boot(daemon::Settings settings, const BootOptions& options) {
  BootRun run(std::move(settings), options);
  return run.run();
}

}  // namespace lab::agent::boot
