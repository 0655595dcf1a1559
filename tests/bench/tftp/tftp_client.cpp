// A TFTP read client for benchmarks: many transfers at once from one thread, RFC 2347/2348/7440
// options, every received file checked byte for byte against a local copy. The Debian clients
// either lack windowsize (tftp-hpa, curl) or spend more CPU per block than the servers under
// test (atftp), so they would measure themselves rather than the server.
//
//   bench_tftp_client --server 10.78.0.1 [--port 69] --file big.bin --expect /srv/big.bin
//                     [--blksize 1468] [--windowsize 64] [--count 1] [--timeout-ms 200]
//                     [--deadline-s 120]
// Prints one line: transfers, failures, bytes, seconds, MB/s, retransmitted ACKs, windowsize
// granted; exits 1 when any transfer failed or differed.
#include "pxe/tftp/wire/packet.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

namespace {

namespace wire = lab::pxe::tftp::wire;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string server;
  std::uint16_t port = 69;
  std::string file;
  std::string expect;
  std::size_t blksize = 1468;
  std::size_t windowsize = 64;  // 0: do not ask for windowsize
  int count = 1;
  std::chrono::milliseconds timeout{200};
  std::chrono::seconds deadline{120};
};

[[noreturn]] void usage(const char* why) {
  (void)std::fprintf(stderr,
                     "bench_tftp_client: %s\nusage: bench_tftp_client --server IP [--port N] "
                     "--file NAME --expect PATH [--blksize N] [--windowsize N (0: none)] "
                     "[--count N] [--timeout-ms N] [--deadline-s N]\n",
                     why);
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc)
      usage(("missing value for " + k).c_str());
    const std::string v = argv[++i];
    if (k == "--server")
      a.server = v;
    else if (k == "--port")
      a.port = static_cast<std::uint16_t>(std::stoul(v));
    else if (k == "--file")
      a.file = v;
    else if (k == "--expect")
      a.expect = v;
    else if (k == "--blksize")
      a.blksize = std::stoul(v);
    else if (k == "--windowsize")
      a.windowsize = std::stoul(v);
    else if (k == "--count")
      a.count = std::stoi(v);
    else if (k == "--timeout-ms")
      a.timeout = std::chrono::milliseconds(std::stoul(v));
    else if (k == "--deadline-s")
      a.deadline = std::chrono::seconds(std::stoul(v));
    else
      usage(("unknown argument " + k).c_str());
  }
  if (a.server.empty() || a.file.empty() || a.expect.empty() || a.count < 1 || a.blksize < 8 ||
      a.blksize > wire::kMaxBlockSize) {
    usage("bad arguments");
  }
  return a;
}

// One read transfer. Blocks are counted in 64 bits; the wire carries the low 16.
struct Transfer {
  int fd = -1;
  bool connected = false;  // to the server's transfer ID, after its first answer
  std::size_t blksize = 512;
  std::size_t window = 1;
  std::uint64_t next = 1;          // next block expected
  std::size_t in_window = 0;       // blocks received since the last ACK
  bool gap_acked = false;          // already asked for a go-back in this window
  std::vector<std::uint8_t> data;  // what arrived, in order
  Clock::time_point last_activity;
  bool done = false;
  bool failed = false;
  std::string why;
  std::vector<std::uint8_t> last_sent;  // the RRQ or the latest ACK, sent again on a timeout
};

void send_bytes(Transfer& t, const sockaddr_in& to, std::vector<std::uint8_t> bytes) {
  t.last_sent = std::move(bytes);
  if (t.connected)
    (void)::send(t.fd, t.last_sent.data(), t.last_sent.size(), 0);
  else
    (void)::sendto(t.fd, t.last_sent.data(), t.last_sent.size(), 0,
                   reinterpret_cast<const sockaddr*>(&to), sizeof to);
}

void send_ack(Transfer& t, const sockaddr_in& to, std::uint64_t block) {
  send_bytes(t, to, wire::serialize(wire::Ack{static_cast<std::uint16_t>(block)}));
  t.in_window = 0;
}

void fail(Transfer& t, std::string why) {
  t.failed = true;
  t.done = true;
  t.why = std::move(why);
}

// A datagram from the server for transfer `t`.
void on_datagram(Transfer& t, const sockaddr_in& server, const sockaddr_in& from,
                 std::span<const std::uint8_t> bytes) {
  if (!t.connected) {
    // The server answers from a new port, its transfer ID; everything after goes there.
    if (::connect(t.fd, reinterpret_cast<const sockaddr*>(&from), sizeof from) != 0)
      return fail(t, std::string("connect: ") + std::strerror(errno));
    t.connected = true;
  }
  auto p = wire::parse(bytes);
  if (!p)
    return;
  if (const auto* oack = std::get_if<wire::OAck>(&*p)) {
    if (t.next != 1 || !t.data.empty())
      return;  // a retransmitted OACK after DATA already flows
    for (const auto& o : oack->options) {
      if (o.name == "blksize")
        t.blksize = std::stoul(o.value);
      else if (o.name == "windowsize")
        t.window = std::stoul(o.value);
    }
    return send_ack(t, server, 0);
  }
  if (const auto* e = std::get_if<wire::ErrorPacket>(&*p))
    return fail(t, "server error " + std::to_string(e->code) + ": " + e->message);
  const auto* d = std::get_if<wire::Data>(&*p);
  if (d == nullptr)
    return;
  if (d->block != static_cast<std::uint16_t>(t.next)) {
    // A block was lost (or this one is an old duplicate): acknowledge the last in-order block
    // once, and the server goes back to the one after it (RFC 7440 section 4).
    if (!t.gap_acked && d->block != static_cast<std::uint16_t>(t.next - 1)) {
      t.gap_acked = true;
      send_ack(t, server, t.next - 1);
    }
    return;
  }
  t.gap_acked = false;
  t.data.insert(t.data.end(), d->payload.begin(), d->payload.end());
  ++t.next;
  ++t.in_window;
  if (d->payload.size() < t.blksize) {
    send_ack(t, server, t.next - 1);
    t.done = true;
    return;
  }
  if (t.in_window >= t.window)
    send_ack(t, server, t.next - 1);
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  std::ifstream in(args.expect, std::ios::binary);
  if (!in)
    usage(("cannot read " + args.expect).c_str());
  const std::vector<std::uint8_t> expected((std::istreambuf_iterator<char>(in)),
                                           std::istreambuf_iterator<char>());

  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(args.port);
  if (::inet_pton(AF_INET, args.server.c_str(), &server.sin_addr) != 1)
    usage("--server is not an IPv4 address");

  std::vector<wire::Option> options{{"blksize", std::to_string(args.blksize)}, {"tsize", "0"}};
  if (args.windowsize > 0)
    options.push_back({"windowsize", std::to_string(args.windowsize)});
  const auto rrq =
      wire::serialize(wire::Request{wire::Opcode::rrq, args.file, wire::Mode::octet, options});

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Transfer> transfers(static_cast<std::size_t>(args.count));
  const auto start = Clock::now();
  for (std::size_t i = 0; i < transfers.size(); ++i) {
    auto& t = transfers[i];
    t.fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int buf = 4 << 20;
    (void)::setsockopt(t.fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    t.data.reserve(expected.size());
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (t.fd < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, t.fd, &ev) != 0)
      usage("socket");
    t.last_activity = start;
    send_bytes(t, server, rrq);
  }

  std::uint64_t resent = 0;
  std::size_t remaining = transfers.size();
  std::vector<std::uint8_t> rx(wire::kMaxBlockSize + 4);
  std::vector<epoll_event> events(64);
  while (remaining > 0) {
    const auto now = Clock::now();
    if (now - start > args.deadline) {
      for (auto& t : transfers) {
        if (!t.done)
          fail(t, "deadline passed");
      }
      break;
    }
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 20);
    for (int k = 0; k < n; ++k) {
      auto& t = transfers[events[static_cast<std::size_t>(k)].data.u64];
      // Drain the socket: one wakeup, many datagrams.
      for (int budget = 0; budget < 256 && !t.done; ++budget) {
        sockaddr_in from{};
        socklen_t len = sizeof from;
        const ssize_t got =
            ::recvfrom(t.fd, rx.data(), rx.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (got < 0)
          break;
        t.last_activity = Clock::now();
        on_datagram(t, server, from, {rx.data(), static_cast<std::size_t>(got)});
      }
      if (t.done) {
        --remaining;
        ::close(t.fd);
        t.fd = -1;
      }
    }
    const auto after = Clock::now();
    for (auto& t : transfers) {
      if (!t.done && after - t.last_activity > args.timeout) {
        // Nothing arrived for a while: repeat what we sent last (the RRQ or the last ACK).
        t.in_window = 0;
        t.gap_acked = false;
        if (t.connected)
          (void)::send(t.fd, t.last_sent.data(), t.last_sent.size(), 0);
        else
          (void)::sendto(t.fd, t.last_sent.data(), t.last_sent.size(), 0,
                         reinterpret_cast<const sockaddr*>(&server), sizeof server);
        t.last_activity = after;
        ++resent;
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  std::size_t failures = 0;
  std::uint64_t bytes = 0;
  std::size_t window = 0;
  for (const auto& t : transfers) {
    if (!t.failed && t.data != expected)
      (void)std::fprintf(stderr, "transfer differs from %s (%zu of %zu bytes)\n",
                         args.expect.c_str(), t.data.size(), expected.size());
    if (t.failed)
      (void)std::fprintf(stderr, "transfer failed: %s\n", t.why.c_str());
    if (t.failed || t.data != expected)
      ++failures;
    bytes += t.data.size();
    window = std::max(window, t.window);
    if (t.fd >= 0)
      ::close(t.fd);
  }
  ::close(ep);
  (void)std::printf(
      "transfers=%zu failures=%zu bytes=%llu seconds=%.3f MBps=%.1f resent=%llu windowsize=%zu\n",
      transfers.size(), failures, static_cast<unsigned long long>(bytes), seconds,
      static_cast<double>(bytes) / seconds / 1e6, static_cast<unsigned long long>(resent), window);
  return failures == 0 ? 0 : 1;
}
