#include "images/deploy/stream.hpp"

#include "images/deploy/error.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace lab::images::deploy {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
struct ListDeleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The header fields one attempt needs; reset at each status line (redirects, 100 Continue).
struct Headers {
  std::string etag;
  std::optional<std::uint64_t> range_start;  // from Content-Range: bytes N-M/T
};

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* h = static_cast<Headers*>(user);
  const std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    *h = Headers{};
    return line.size();
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos)
    return line.size();
  const auto name = lower(std::string(line.substr(0, colon)));
  auto value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  if (name == "etag" && !value.starts_with("W/")) {
    h->etag = std::string(value);
  } else if (name == "content-range" && value.starts_with("bytes ")) {
    const auto digits = value.substr(6);
    std::uint64_t start = 0;
    std::size_t i = 0;
    for (; i < digits.size() && digits[i] >= '0' && digits[i] <= '9'; ++i)
      start = start * 10 + static_cast<std::uint64_t>(digits[i] - '0');
    if (i > 0 && i < digits.size() && digits[i] == '-')
      h->range_start = start;
  }
  return line.size();
}

// Between the downloading thread and the extracting one.
class Channel {
 public:
  explicit Channel(std::size_t limit) : limit_(limit) {}

  // Producer. False when the consumer has gone.
  bool push(std::string chunk) {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return queued_ < limit_ || cancelled_; });
    if (cancelled_)
      return false;
    queued_ += chunk.size();
    chunks_.push_back(std::move(chunk));
    cv_.notify_all();
    return true;
  }
  void finish(std::optional<Error> error) {
    const std::lock_guard lock(m_);
    done_ = true;
    error_ = std::move(error);
    cv_.notify_all();
  }
  // Waits up to `d` unless cancelled; true when cancelled.
  bool sleep_unless_cancelled(std::chrono::milliseconds d) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, d, [&] { return cancelled_; });
  }
  [[nodiscard]] bool cancelled() {
    const std::lock_guard lock(m_);
    return cancelled_;
  }

  // Consumer. The next chunk, or nullopt at the end (error() says whether it failed).
  std::optional<std::string> pop() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return !chunks_.empty() || done_; });
    if (chunks_.empty())
      return std::nullopt;
    std::string c = std::move(chunks_.front());
    chunks_.pop_front();
    queued_ -= c.size();
    cv_.notify_all();
    return c;
  }
  std::optional<Error> error() {
    const std::lock_guard lock(m_);
    return error_;
  }
  void cancel() {
    const std::lock_guard lock(m_);
    cancelled_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::string> chunks_;
  std::size_t queued_ = 0;
  std::size_t limit_;
  bool done_ = false;
  bool cancelled_ = false;
  std::optional<Error> error_;
};

// The downloading side: attempts until every byte has arrived, the budget is spent, or the
// server says something no retry can change.
class Download {
 public:
  Download(std::string url, std::uint64_t size, const StreamOptions& o, Channel& ch)
      : url_(std::move(url)), size_(size), o_(o), ch_(ch) {}

  void run() {
    global_init();
    auto last_progress = Clock::now();
    std::chrono::milliseconds backoff(250);
    for (;;) {
      const auto before = received_;
      auto r = attempt_once();
      if (received_ > before) {
        last_progress = Clock::now();
        backoff = std::chrono::milliseconds(250);
      }
      if (r.fatal) {
        ch_.finish(std::move(r.fatal));
        return;
      }
      if (received_ == size_ && r.complete) {
        ch_.finish(std::nullopt);
        return;
      }
      if (ch_.cancelled())
        return;
      if (Clock::now() - last_progress > o_.retry_budget) {
        ch_.finish(Error(DeployError::download_failed,
                         fmt_budget() + " without a byte from the server; last: " + r.why));
        return;
      }
      ++resumes_;
      if (ch_.sleep_unless_cancelled(backoff))
        return;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(4000));
    }
  }

  [[nodiscard]] std::uint64_t received() const noexcept { return received_; }
  [[nodiscard]] std::uint64_t fetched() const noexcept { return fetched_; }
  [[nodiscard]] unsigned resumes() const noexcept { return resumes_; }
  std::string digest() { return shared::crypto::hex_encode(hash_.finish()); }

 private:
  struct Attempt {
    std::optional<Error> fatal;  // no retry
    bool complete = false;       // the transfer ended normally
    std::string why;             // why it did not, for the budget's error
  };

  std::string fmt_budget() const {
    return std::to_string(o_.retry_budget.count() / 1000) + " s (the retry budget)";
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<Download*>(user);
    const std::size_t n = size * count;
    return self->take(std::string_view(data, n)) ? n : 0;
  }

  static int on_progress(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/,
                         curl_off_t /*ultotal*/, curl_off_t /*ulnow*/) {
    auto* self = static_cast<Download*>(user);
    return Clock::now() - self->last_byte_ > self->o_.stall_timeout ? 1 : 0;
  }

  // False aborts the transfer (fatal_ says why, or the consumer has gone).
  bool take(std::string_view data) {
    last_byte_ = Clock::now();
    if (!checked_) {
      long status = 0;
      curl_easy_getinfo(handle_, CURLINFO_RESPONSE_CODE, &status);
      if (received_ > 0) {
        if (status != 206 || headers_.range_start != received_) {
          fatal_ = Error(DeployError::download_failed,
                         "the server did not resume at byte " + std::to_string(received_) +
                             (status == 200 ? " (the image changed on the server?)" : ""));
          return false;
        }
      } else if (status != 200 && !(status == 206 && headers_.range_start == 0)) {
        return false;  // judged after perform by the status
      }
      if (etag_.empty())
        etag_ = headers_.etag;
      checked_ = true;
    }
    fetched_ += data.size();
    if (received_ + data.size() > size_) {
      fatal_ = Error(DeployError::checksum_mismatch, "the server sent more than the manifest's " +
                                                         std::to_string(size_) + " bytes");
      return false;
    }
    hash_.update(data);
    received_ += data.size();
    return ch_.push(std::string(data));
  }

  Attempt attempt_once() {
    Attempt a;
    const CurlPtr curl(curl_easy_init());
    if (!curl) {
      a.why = "libcurl: cannot create a handle";
      return a;
    }
    handle_ = curl.get();
    checked_ = false;
    headers_ = Headers{};
    fatal_.reset();
    std::unique_ptr<curl_slist, ListDeleter> list;
    const auto range = std::to_string(received_) + "-";
    CURL* h = curl.get();
    curl_easy_setopt(h, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o_.connect_timeout.count()));
    // libcurl's own low-speed check averages over several seconds; a stall is judged here from
    // the last byte (libcurl calls this at least once a second while a transfer is idle).
    last_byte_ = Clock::now();
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, this);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &headers_);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    if (received_ > 0) {
      curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
      // If-Range: the rest of this very file, or (on a 200) nothing we can use.
      if (!etag_.empty()) {
        list.reset(curl_slist_append(nullptr, ("If-Range: " + etag_).c_str()));
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get());
      }
    }
    const CURLcode code = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    handle_ = nullptr;
    if (fatal_) {
      a.fatal = std::move(fatal_);
      return a;
    }
    if (status == 404) {
      a.fatal = Error(DeployError::unknown_image, url_ + ": not found (404)");
      return a;
    }
    if (status >= 400 && status < 500) {
      a.fatal = Error(DeployError::download_failed, url_ + ": HTTP " + std::to_string(status));
      return a;
    }
    if (code == CURLE_OK && checked_) {
      a.complete = true;
      a.why = "the transfer ended early at byte " + std::to_string(received_);
      return a;
    }
    a.why =
        code != CURLE_OK ? std::string(curl_easy_strerror(code)) : "HTTP " + std::to_string(status);
    return a;
  }

  std::string url_;
  std::uint64_t size_;
  const StreamOptions& o_;
  Channel& ch_;
  CURL* handle_ = nullptr;
  Clock::time_point last_byte_;
  bool checked_ = false;
  Headers headers_;
  std::string etag_;
  std::optional<Error> fatal_;
  shared::crypto::Sha256 hash_;
  std::uint64_t received_ = 0;
  std::uint64_t fetched_ = 0;
  unsigned resumes_ = 0;
};

// libarchive's read side, fed from the channel.
struct Reader {
  Channel* ch;
  std::string current;
  std::uint64_t consumed = 0;
  std::uint64_t total = 0;
  const StreamOptions* o;
};

la_ssize_t on_read(archive* a, void* user, const void** buffer) {
  auto* r = static_cast<Reader*>(user);
  auto chunk = r->ch->pop();
  if (!chunk) {
    if (auto e = r->ch->error()) {
      archive_set_error(a, EIO, "%s", e->message().c_str());
      return -1;
    }
    return 0;
  }
  r->current = std::move(*chunk);
  r->consumed += r->current.size();
  if (r->o->progress)
    r->o->progress(r->consumed, r->total);
  *buffer = r->current.data();
  return static_cast<la_ssize_t>(r->current.size());
}

// The entry's path under target: "./etc/x" and "/etc/x" both land at target/etc/x.
std::string under(const std::string& target, const char* name) {
  std::string_view p(name == nullptr ? "" : name);
  while (p.starts_with("./"))
    p.remove_prefix(2);
  while (p.starts_with("/"))
    p.remove_prefix(1);
  if (p.empty() || p == ".")
    return target;
  return target + "/" + std::string(p);
}

Error archive_error(archive* a, const std::string& what) {
  const char* e = archive_error_string(a);
  return Error(DeployError::archive_failed, what + ": " + (e != nullptr ? e : "libarchive error"));
}

Result<std::uint64_t> extract(archive* in, const std::string& target) {
  const std::unique_ptr<archive, int (*)(archive*)> out(archive_write_disk_new(),
                                                        archive_write_free);
  archive_write_disk_set_options(
      out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
                     ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                     ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_UNLINK);
  std::uint64_t entries = 0;
  for (;;) {
    archive_entry* entry = nullptr;
    const int rc = archive_read_next_header(in, &entry);
    if (rc == ARCHIVE_EOF)
      break;
    if (rc < ARCHIVE_WARN)
      return archive_error(in, "reading the image");
    const std::string name =
        archive_entry_pathname(entry) != nullptr ? archive_entry_pathname(entry) : std::string();
    archive_entry_set_pathname(entry, under(target, name.c_str()).c_str());
    if (const char* link = archive_entry_hardlink(entry); link != nullptr)
      archive_entry_set_hardlink(entry, under(target, link).c_str());
    if (archive_write_header(out.get(), entry) < ARCHIVE_WARN)
      return archive_error(out.get(), "writing " + name);
    if (archive_entry_size(entry) > 0) {
      const void* buf = nullptr;
      std::size_t len = 0;
      la_int64_t offset = 0;
      for (;;) {
        const int d = archive_read_data_block(in, &buf, &len, &offset);
        if (d == ARCHIVE_EOF)
          break;
        if (d < ARCHIVE_WARN)
          return archive_error(in, "reading " + name);
        if (archive_write_data_block(out.get(), buf, len, offset) < ARCHIVE_WARN)
          return archive_error(out.get(), "writing " + name);
      }
    }
    if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN)
      return archive_error(out.get(), "finishing " + name);
    ++entries;
  }
  // Directory times and modes are set last, now.
  if (archive_write_close(out.get()) != ARCHIVE_OK)
    return archive_error(out.get(), "finishing the extraction");
  return entries;
}

}  // namespace

Result<StreamResult> stream_extract(const std::string& url, std::uint64_t size,
                                    const fs::path& target, const StreamOptions& options) {
  std::error_code ec;
  const auto root = fs::canonical(target, ec);
  if (ec)
    return Error(DeployError::archive_failed, target.string() + ": " + ec.message());
  Channel ch(options.buffer);
  Download download(url, size, options, ch);
  std::thread downloader([&] { download.run(); });
  Reader reader{&ch, {}, 0, size, &options};

  const std::unique_ptr<archive, int (*)(archive*)> in(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(in.get());
  archive_read_support_format_tar(in.get());
  Result<std::uint64_t> entries = std::uint64_t{0};
  if (archive_read_open(in.get(), &reader, nullptr, on_read, nullptr) != ARCHIVE_OK) {
    entries = archive_error(in.get(), "opening the image");
  } else {
    entries = extract(in.get(), root.string());
  }
  if (entries) {
    // What libarchive did not need (padding after the end of the archive) is still the
    // image's: read to the end so that the checksum covers every byte.
    while (ch.pop()) {
    }
  }
  ch.cancel();
  downloader.join();
  if (auto e = ch.error())
    return *e;  // the download's failure explains the extraction's
  if (!entries)
    return entries.error();
  StreamResult r;
  r.bytes = download.received();
  r.fetched = download.fetched();
  r.resumes = download.resumes();
  r.entries = *entries;
  r.sha256 = download.digest();
  return r;
}

Result<std::string> fetch(const std::string& url, std::size_t max,
                          std::chrono::milliseconds timeout) {
  global_init();
  const CurlPtr curl(curl_easy_init());
  if (!curl)
    return Error(DeployError::download_failed, "libcurl: cannot create a handle");
  struct Body {
    std::string data;
    std::size_t max;
  } body{{}, max};
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION, +[](char* d, std::size_t s, std::size_t n, void* u) -> std::size_t {
        auto* b = static_cast<Body*>(u);
        if (b->data.size() + s * n > b->max)
          return 0;
        b->data.append(d, s * n);
        return s * n;
      });
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  const CURLcode code = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status == 404)
    return Error(DeployError::unknown_image, url + ": not found (404)");
  if (code == CURLE_WRITE_ERROR)
    return Error(DeployError::download_failed,
                 url + ": more than " + std::to_string(max) + " bytes");
  if (code != CURLE_OK)
    return Error(DeployError::download_failed, url + ": " + curl_easy_strerror(code));
  if (status != 200)
    return Error(DeployError::download_failed, url + ": HTTP " + std::to_string(status));
  return std::move(body.data);
}

}  // namespace lab::images::deploy
