// Conditional and partial GET of files: Range parsing, ETag matching, the responses they make.
#include "shared/http/message/file_response.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::shared::http;
using Kind = RangeRequest::Kind;

TEST(HttpRange, ParsesTheThreeFormsOfOneRange) {
  auto r = parse_range("bytes=0-99", 1000);
  EXPECT_EQ(r.kind, Kind::partial);
  EXPECT_EQ(r.range.first, 0u);
  EXPECT_EQ(r.range.length, 100u);
  r = parse_range("bytes=900-", 1000);
  EXPECT_EQ(r.kind, Kind::partial);
  EXPECT_EQ(r.range.first, 900u);
  EXPECT_EQ(r.range.length, 100u);
  r = parse_range("bytes=-10", 1000);
  EXPECT_EQ(r.kind, Kind::partial);
  EXPECT_EQ(r.range.first, 990u);
  EXPECT_EQ(r.range.length, 10u);
  r = parse_range("Bytes=5-5", 1000);
  EXPECT_EQ(r.kind, Kind::partial);
  EXPECT_EQ(r.range.first, 5u);
  EXPECT_EQ(r.range.length, 1u);
}

TEST(HttpRange, ClampsPastTheEndAndHandlesHugeFiles) {
  auto r = parse_range("bytes=990-5000", 1000);
  EXPECT_EQ(r.kind, Kind::partial);
  EXPECT_EQ(r.range.length, 10u);
  r = parse_range("bytes=-5000", 1000);
  EXPECT_EQ(r.kind, Kind::partial);
  EXPECT_EQ(r.range.first, 0u);
  EXPECT_EQ(r.range.length, 1000u);
  const std::uint64_t five_gib = std::uint64_t{5} << 30;
  r = parse_range("bytes=4831838208-4831838215", five_gib);
  EXPECT_EQ(r.kind, Kind::partial);
  EXPECT_EQ(r.range.first, 4831838208u);
  EXPECT_EQ(r.range.length, 8u);
}

TEST(HttpRange, PastTheEndIsUnsatisfiable) {
  EXPECT_EQ(parse_range("bytes=1000-", 1000).kind, Kind::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=5000-6000", 1000).kind, Kind::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-0", 1000).kind, Kind::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-", 0).kind, Kind::unsatisfiable);
}

TEST(HttpRange, WhatItCannotUseMeansTheWholeFile) {
  for (const char* h :
       {"", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=5-2", "items=0-1", "bytes=0-1,5-6",
        "bytes=+1-2", "bytes=99999999999999999999-", "bytes=--1", "bytes=1-2-3", "bytes 0-1"}) {
    EXPECT_EQ(parse_range(h, 1000).kind, Kind::whole) << h;
  }
}

TEST(HttpEtag, ChangesWithSizeOrTimeAndMatchesWeakly) {
  const FileInfo a{.size = 10, .mtime_sec = 1700000000, .mtime_nsec = 5000};
  const FileInfo b{.size = 11, .mtime_sec = 1700000000, .mtime_nsec = 5000};
  const FileInfo c{.size = 10, .mtime_sec = 1700000000, .mtime_nsec = 6000};
  EXPECT_NE(make_etag(a), make_etag(b));
  EXPECT_NE(make_etag(a), make_etag(c));
  EXPECT_EQ(make_etag(a).front(), '"');
  const std::string tag = make_etag(a);
  EXPECT_TRUE(etag_matches(tag, tag));
  EXPECT_TRUE(etag_matches("W/" + tag, tag));
  EXPECT_TRUE(etag_matches("\"x\", " + tag, tag));
  EXPECT_TRUE(etag_matches(" * ", tag));
  EXPECT_FALSE(etag_matches(make_etag(b), tag));
  EXPECT_FALSE(etag_matches("", tag));
}

TEST(HttpDate, IsImfFixdate) {
  EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
}

Request get(std::initializer_list<std::pair<const char*, std::string>> headers) {
  Request r;
  r.method = "GET";
  for (const auto& [k, v] : headers)
    r.headers.add(k, v);
  return r;
}

TEST(HttpFileResponse, WholeRangeNotModifiedAndUnsatisfiable) {
  auto file = std::make_shared<const File>(-1);
  const FileInfo info{.size = 1000, .mtime_sec = 784111777, .mtime_nsec = 0};
  const std::string tag = make_etag(info);

  auto whole = file_response(get({}), file, info, "application/octet-stream");
  EXPECT_EQ(whole.status, 200u);
  ASSERT_TRUE(whole.file);
  EXPECT_EQ(whole.file->offset, 0u);
  EXPECT_EQ(whole.file->length, 1000u);
  EXPECT_EQ(whole.headers.get("ETag"), tag);
  EXPECT_EQ(whole.headers.get("Last-Modified"), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(whole.headers.get("Accept-Ranges"), "bytes");
  EXPECT_EQ(whole.headers.get("Content-Type"), "application/octet-stream");

  auto part = file_response(get({{"Range", "bytes=100-199"}}), file, info, "x/y");
  EXPECT_EQ(part.status, 206u);
  ASSERT_TRUE(part.file);
  EXPECT_EQ(part.file->offset, 100u);
  EXPECT_EQ(part.file->length, 100u);
  EXPECT_EQ(part.headers.get("Content-Range"), "bytes 100-199/1000");

  auto stale = file_response(get({{"Range", "bytes=100-199"}, {"If-Range", "\"other\""}}), file,
                             info, "x/y");
  EXPECT_EQ(stale.status, 200u);
  auto fresh =
      file_response(get({{"Range", "bytes=100-199"}, {"If-Range", tag}}), file, info, "x/y");
  EXPECT_EQ(fresh.status, 206u);

  auto not_modified = file_response(get({{"If-None-Match", tag}}), file, info, "x/y");
  EXPECT_EQ(not_modified.status, 304u);
  EXPECT_FALSE(not_modified.file);
  EXPECT_EQ(not_modified.headers.get("ETag"), tag);

  auto unsatisfiable = file_response(get({{"Range", "bytes=1000-"}}), file, info, "x/y");
  EXPECT_EQ(unsatisfiable.status, 416u);
  EXPECT_FALSE(unsatisfiable.file);
  EXPECT_EQ(unsatisfiable.headers.get("Content-Range"), "bytes */1000");
}

}  // namespace
