#include "pxe/dhcp/engine/lease_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <map>

namespace lab::pxe::dhcp::engine {
namespace {

constexpr std::size_t kMaxLine = 512;  // longer lines are corruption, not leases

// The longest record the engine writes, without its newline: "L", an address, a state, a
// negative 64-bit expiry, a 16-byte hardware address, the longest client id it accepts in hex,
// the checksum, and the spaces between them.
constexpr std::size_t kLongestRecord = 1 + 15 + 1 + 20 + 47 + 2 * wire::kMaxClientId + 8 + 6;
static_assert(kLongestRecord <= kMaxLine, "a record the engine writes must fit a journal line");

std::uint32_t crc32(std::string_view data) noexcept {
  static const auto kTable = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) != 0 ? 0xEDB88320U ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFU;
  for (char ch : data)
    c = kTable[(c ^ static_cast<std::uint8_t>(ch)) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

constexpr char kHex[] = "0123456789abcdef";

std::string hex(std::string_view bytes) {
  if (bytes.empty())
    return "-";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<std::uint8_t>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

int unhex_digit(char c) noexcept {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

bool unhex(std::string_view text, std::string& out) {
  out.clear();
  if (text == "-")
    return true;
  if (text.size() % 2 != 0)
    return false;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int hi = unhex_digit(text[i]);
    const int lo = unhex_digit(text[i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return true;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool live(const Lease& l, std::int64_t now) {
  return l.state != Lease::State::released && l.expires > now;
}

}  // namespace

const boost::system::error_category& store_category() noexcept {
  static const ErrorCategory<StoreError> kCategory("lab.dhcp.store",
                                                   [](StoreError e) noexcept -> const char* {
                                                     switch (e) {
                                                       case StoreError::open_failed:
                                                         return "cannot open lease journal";
                                                       case StoreError::read_failed:
                                                         return "cannot read lease journal";
                                                       case StoreError::compact_failed:
                                                         return "cannot compact lease journal";
                                                       case StoreError::write_failed:
                                                         return "cannot append to lease journal";
                                                       case StoreError::sync_failed:
                                                         return "cannot sync lease journal";
                                                       case StoreError::closed:
                                                         return "lease store closed";
                                                     }
                                                     return "lease store error";
                                                   });
  return kCategory;
}

std::string encode_record(const Lease& lease) {
  std::string body = "L ";
  body += lease.ip.to_string();
  body += ' ';
  switch (lease.state) {
    case Lease::State::bound:
      body += 'b';
      break;
    case Lease::State::released:
      body += 'r';
      break;
    case Lease::State::declined:
      body += 'd';
      break;
    case Lease::State::observed:
      body += 'o';
      break;
  }
  body += ' ';
  body += std::to_string(lease.expires);
  body += ' ';
  body += lease.mac.empty() ? "-" : lease.mac;
  body += ' ';
  body += hex(lease.client);
  std::array<char, 9> crc{};
  const std::uint32_t c = crc32(body);
  for (int i = 0; i < 8; ++i)
    crc[static_cast<std::size_t>(i)] = kHex[(c >> (28 - 4 * i)) & 0xf];
  body += ' ';
  body.append(crc.data(), 8);
  assert(body.size() <= kMaxLine);  // the loader would skip it
  body += '\n';
  return body;
}

Result<Lease> decode_record(std::string_view line) {
  const auto bad = [&](const char* why) {
    return Error(StoreError::read_failed, std::string("journal record ") + why);
  };
  if (line.size() < 10)
    return bad("too short");
  const auto crc_text = line.substr(line.size() - 8);
  const auto body = line.substr(0, line.size() - 9);
  if (line[line.size() - 9] != ' ')
    return bad("has no checksum");
  std::uint32_t crc = 0;
  auto [p, ec] = std::from_chars(crc_text.data(), crc_text.data() + 8, crc, 16);
  if (ec != std::errc() || p != crc_text.data() + 8 || crc != crc32(body))
    return bad("fails its checksum");
  std::array<std::string_view, 6> f;
  std::size_t start = 0;
  for (std::size_t i = 0; i < f.size(); ++i) {
    const auto sp = body.find(' ', start);
    if ((sp == std::string_view::npos) != (i + 1 == f.size()))
      return bad("has the wrong number of fields");
    f[i] = body.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start);
    start = sp + 1;
  }
  Lease l;
  auto ip = wire::Ipv4::parse(f[1]);
  if (f[0] != "L" || !ip || f[2].size() != 1)
    return bad("is malformed");
  l.ip = *ip;
  switch (f[2][0]) {
    case 'b':
      l.state = Lease::State::bound;
      break;
    case 'r':
      l.state = Lease::State::released;
      break;
    case 'd':
      l.state = Lease::State::declined;
      break;
    case 'o':
      l.state = Lease::State::observed;
      break;
    default:
      return bad("has an unknown state");
  }
  auto [q, ec2] = std::from_chars(f[3].data(), f[3].data() + f[3].size(), l.expires);
  if (ec2 != std::errc() || q != f[3].data() + f[3].size())
    return bad("has a bad expiry");
  l.mac = f[4] == "-" ? "" : std::string(f[4]);
  if (!unhex(f[5], l.client))
    return bad("has a bad client id");
  return l;
}

Result<std::vector<Lease>> MemoryLeaseStore::load() {
  const std::lock_guard lock(mutex_);
  std::map<std::uint32_t, Lease> newest;
  for (const auto& l : leases_)
    newest[l.ip.value] = l;
  std::vector<Lease> out;
  out.reserve(newest.size());
  for (auto& [ip, l] : newest)
    out.push_back(l);
  return out;
}

void MemoryLeaseStore::commit(std::vector<Lease> records, std::function<void(Result<void>)> done) {
  {
    const std::lock_guard lock(mutex_);
    leases_.insert(leases_.end(), records.begin(), records.end());
  }
  done(Result<void>());
}

Result<std::unique_ptr<JournalLeaseStore>> JournalLeaseStore::open(
    const std::filesystem::path& path, std::int64_t now, Durability durability) {
  std::map<std::uint32_t, Lease> newest;
  std::size_t dropped = 0;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT)
      return Error(StoreError::open_failed, "cannot open " + path.string());
    if (fd >= 0) {
      std::string data;
      std::array<char, 65536> buf{};
      for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR)
          continue;
        if (n < 0) {
          ::close(fd);
          return Error(StoreError::read_failed, "cannot read " + path.string());
        }
        if (n == 0)
          break;
        data.append(buf.data(), static_cast<std::size_t>(n));
      }
      ::close(fd);
      // Whole lines only. A last line without its newline is a write torn by a crash, never
      // acknowledged. Any other line that does not decode (bit rot, a line longer than a
      // record) costs that record alone: stopping there would drop every lease recorded after
      // it at the compaction below, and those addresses would be handed out again.
      std::size_t pos = 0;
      while (pos < data.size()) {
        const auto nl = data.find('\n', pos);
        if (nl == std::string::npos) {
          ++dropped;
          break;
        }
        const auto line = std::string_view(data).substr(pos, nl - pos);
        pos = nl + 1;
        if (line.size() > kMaxLine) {
          ++dropped;
          continue;
        }
        auto rec = decode_record(line);
        if (!rec) {
          ++dropped;
          continue;
        }
        newest[rec->ip.value] = std::move(*rec);
      }
    }
  }

  std::vector<Lease> live_leases;
  std::string compacted;
  for (auto& [ip, l] : newest) {
    if (live(l, now)) {
      compacted += encode_record(l);
      live_leases.push_back(l);
    }
  }
  // Write the compacted journal beside the old one and rename it over: a crash in between
  // leaves one of the two whole.
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  const int tfd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (tfd < 0)
    return Error(StoreError::compact_failed, "cannot create " + tmp.string());
  if (!write_all(tfd, compacted) || ::fsync(tfd) != 0) {
    ::close(tfd);
    return Error(StoreError::compact_failed, "cannot write " + tmp.string());
  }
  ::close(tfd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return Error(StoreError::compact_failed, "cannot rename " + tmp.string());
  auto dir = path.parent_path();
  if (dir.empty())
    dir = ".";
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0)
    return Error(StoreError::open_failed, "cannot open " + path.string() + " for appending");
  return std::unique_ptr<JournalLeaseStore>(
      new JournalLeaseStore(fd, std::move(live_leases), dropped, durability));
}

JournalLeaseStore::JournalLeaseStore(int fd, std::vector<Lease> live, std::size_t dropped,
                                     Durability durability)
    : fd_(fd), durability_(durability), live_(std::move(live)), dropped_(dropped), thread_([this] {
        writer();
      }) {}

JournalLeaseStore::~JournalLeaseStore() {
  {
    const std::lock_guard lock(mutex_);
    closing_ = true;
  }
  wake_.notify_all();
  thread_.join();
  ::close(fd_);
}

Result<std::vector<Lease>> JournalLeaseStore::load() {
  return live_;
}

void JournalLeaseStore::commit(std::vector<Lease> records, std::function<void(Result<void>)> done) {
  // Even without fdatasync the write goes to the writer thread: a write() usually costs
  // microseconds, but blocks for as long as the kernel throttles a process that dirties pages
  // while the disk is busy, and the caller is the DHCP server's only thread.
  {
    const std::lock_guard lock(mutex_);
    if (!closing_) {
      queue_.push_back(Batch{std::move(records), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(Error(StoreError::closed));
}

Result<void> JournalLeaseStore::append(const std::string& records) {
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  if (!write_all(fd_, records)) {
    // Cut off a torn record so that later records stay readable after it.
    if (before >= 0 && ::ftruncate(fd_, before) != 0) {
      return Error(StoreError::write_failed,
                   "lease journal write failed, and cutting off the torn record failed too");
    }
    return Error(StoreError::write_failed, "lease journal write failed");
  }
  if (durability_ == Durability::fdatasync && ::fdatasync(fd_) != 0)
    return Error(StoreError::sync_failed, "lease journal fdatasync failed");
  return {};
}

void JournalLeaseStore::writer() {
  std::deque<Batch> work;
  std::string buf;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      if (queue_.empty() && closing_)
        return;
      work.swap(queue_);
    }
    buf.clear();
    for (const auto& b : work) {
      for (const auto& l : b.records)
        buf += encode_record(l);
    }
    const Result<void> r = append(buf);
    for (auto& b : work)
      b.done(r);
    work.clear();
  }
}

}  // namespace lab::pxe::dhcp::engine
