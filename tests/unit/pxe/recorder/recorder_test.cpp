// The boot flight recorder: attribution of IP-only events, bounds, JSON and text timelines.
#include "pxe/recorder/recorder.hpp"

#include "pxe/recorder/render.hpp"
#include "shared/json/json.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace {

using namespace lab::pxe;
using events::Event;
using events::Kind;
using recorder::Recorder;
using namespace std::chrono_literals;

const auto kT0 = std::chrono::system_clock::time_point(std::chrono::seconds(1795000000));

Event ev(Kind kind, std::string mac, std::string ip = {},
         std::chrono::milliseconds at = std::chrono::milliseconds(0),
         std::vector<std::pair<std::string, std::string>> detail = {}) {
  return Event{kT0 + at, kind, std::move(mac), std::move(ip), std::move(detail)};
}

TEST(Recorder, AttributesTftpAndHttpEventsThroughTheDhcpAddress) {
  Recorder r;
  r.record(ev(Kind::dhcp_discover, "52:54:00:12:34:56", {}, 0ms, {{"arch", "x86-64-uefi"}}));
  r.record(ev(Kind::dhcp_ack, "52-54-00-12-34-56", "10.0.0.5", 400ms));
  r.record(ev(Kind::tftp_start, "", "10.0.0.5", 500ms, {{"file", "ipxe.efi"}}));
  r.record(ev(Kind::http_fetch, "", "10.0.0.5", 900ms, {{"file", "vmlinuz"}}));
  r.record(ev(Kind::http_fetch, "", "10.0.0.99", 950ms));  // nobody we know

  EXPECT_EQ(r.mac_for_ip("10.0.0.5"), "52:54:00:12:34:56");
  EXPECT_EQ(r.last_ip("52:54:00:12:34:56"), "10.0.0.5");
  EXPECT_EQ(r.last_ip("52-54-00-12-34-56"), "10.0.0.5");
  EXPECT_FALSE(r.mac_for_ip("10.0.0.99"));
  const auto t = r.timeline("52:54:00:12:34:56");
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[2].kind, Kind::tftp_start);
  EXPECT_EQ(t[2].mac, "52:54:00:12:34:56");
  EXPECT_EQ(t[3].kind, Kind::http_fetch);
  ASSERT_EQ(r.unattributed().size(), 1u);
  EXPECT_EQ(r.unattributed()[0].ip, "10.0.0.99");
  EXPECT_EQ(r.stats().attributed_by_ip, 2u);
}

TEST(Recorder, OnlyAddressAssigningEventsTeachTheMap) {
  Recorder r;
  // A DISCOVER or REQUEST carrying an address proves nothing: the client can claim any.
  r.record(ev(Kind::dhcp_request, "52:54:00:00:00:01", "10.0.0.7"));
  r.record(ev(Kind::script_render, "52:54:00:00:00:01", "10.0.0.7"));
  EXPECT_FALSE(r.mac_for_ip("10.0.0.7"));
  EXPECT_FALSE(r.last_ip("52:54:00:00:00:01"));
  r.record(ev(Kind::proxy_ack, "52:54:00:00:00:01", "10.0.0.7"));
  EXPECT_EQ(r.mac_for_ip("10.0.0.7"), "52:54:00:00:00:01");
}

TEST(Recorder, AReassignedAddressMovesToItsNewMachine) {
  Recorder r;
  r.record(ev(Kind::dhcp_ack, "52:54:00:00:00:01", "10.0.0.7"));
  r.record(ev(Kind::dhcp_ack, "52:54:00:00:00:02", "10.0.0.7"));
  EXPECT_EQ(r.mac_for_ip("10.0.0.7"), "52:54:00:00:00:02");
  EXPECT_FALSE(r.last_ip("52:54:00:00:00:01"));
  r.record(ev(Kind::dhcp_ack, "52:54:00:00:00:02", "10.0.0.8"));
  EXPECT_FALSE(r.mac_for_ip("10.0.0.7"));
  EXPECT_EQ(r.mac_for_ip("10.0.0.8"), "52:54:00:00:00:02");
}

TEST(Recorder, TimelinesAreBoundedAndKeepTheNewestEvents) {
  Recorder r({.events_per_machine = 4, .max_machines = 8, .unattributed = 2});
  for (int i = 0; i < 10; ++i)
    r.record(ev(Kind::dhcp_discover, "52:54:00:00:00:01", {}, std::chrono::milliseconds(i)));
  const auto t = r.timeline("52:54:00:00:00:01");
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t.front().at, kT0 + 6ms);
  EXPECT_EQ(t.back().at, kT0 + 9ms);
  for (int i = 0; i < 5; ++i)
    r.record(ev(Kind::tftp_start, "", "192.0.2." + std::to_string(i)));
  ASSERT_EQ(r.unattributed().size(), 2u);
  EXPECT_EQ(r.unattributed()[1].ip, "192.0.2.4");
}

TEST(Recorder, ForgetsTheLeastRecentlyActiveMachineAndItsAddress) {
  Recorder r({.events_per_machine = 4, .max_machines = 3, .unattributed = 4});
  r.record(ev(Kind::dhcp_ack, "52:54:00:00:00:01", "10.0.0.1"));
  r.record(ev(Kind::dhcp_ack, "52:54:00:00:00:02", "10.0.0.2"));
  r.record(ev(Kind::dhcp_ack, "52:54:00:00:00:03", "10.0.0.3"));
  // Activity on 01 (through its IP) makes 02 the least recently active.
  r.record(ev(Kind::http_fetch, "", "10.0.0.1"));
  r.record(ev(Kind::dhcp_ack, "52:54:00:00:00:04", "10.0.0.4"));
  EXPECT_TRUE(r.timeline("52:54:00:00:00:02").empty());
  EXPECT_FALSE(r.mac_for_ip("10.0.0.2"));
  EXPECT_EQ(r.timeline("52:54:00:00:00:01").size(), 2u);
  EXPECT_EQ(r.machines(), (std::vector<std::string>{"52:54:00:00:00:04", "52:54:00:00:00:01",
                                                    "52:54:00:00:00:03"}));
  EXPECT_EQ(r.stats().machines_evicted, 1u);
  EXPECT_EQ(r.stats().machines, 3u);
}

TEST(Recorder, AMalformedMacCountsAsNone) {
  Recorder r;
  r.record(ev(Kind::dhcp_ack, "52:54:00:00:00:01", "10.0.0.1"));
  r.record(ev(Kind::agent_boot, "not-a-mac", "10.0.0.1"));
  EXPECT_EQ(r.timeline("52:54:00:00:00:01").size(), 2u);
  EXPECT_TRUE(r.timeline("not-a-mac").empty());
}

TEST(Recorder, ConcurrentWritersAndReadersStayConsistent) {
  Recorder r({.events_per_machine = 16, .max_machines = 64, .unattributed = 16});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string mac =
            "52:54:00:00:" + std::to_string(10 + t) + ":" + std::to_string(10 + i % 80);
        r.record(
            ev(Kind::dhcp_ack, mac, "10." + std::to_string(t) + ".0." + std::to_string(i % 80)));
        r.record(
            ev(Kind::http_fetch, "", "10." + std::to_string(t) + ".0." + std::to_string(i % 80)));
        (void)r.timeline(mac);
      }
    });
  }
  for (auto& th : threads)
    th.join();
  const auto s = r.stats();
  EXPECT_EQ(s.recorded, 16000u);
  EXPECT_LE(s.machines, 64u);
  for (const auto& mac : r.machines())
    EXPECT_LE(r.timeline(mac).size(), 16u);
}

TEST(RecorderRender, JsonCarriesEveryFieldOfEveryEvent) {
  std::vector<Event> t{
      ev(Kind::dhcp_discover, "52:54:00:12:34:56", {}, 0ms, {{"arch", "x86-64-uefi"}}),
      ev(Kind::dhcp_ack, "52:54:00:12:34:56", "10.0.0.5", 1234ms, {{"lease", "3600"}})};
  auto doc = lab::shared::json::parse_object(recorder::timeline_json("52:54:00:12:34:56", t));
  ASSERT_TRUE(doc) << doc.error().message();
  EXPECT_EQ(doc->at("mac").as_string(), "52:54:00:12:34:56");
  const auto& events = doc->at("events").as_array();
  ASSERT_EQ(events.size(), 2u);
  const auto& first = events[0].as_object();
  EXPECT_EQ(first.at("at").as_string(), "2026-11-18T11:06:40.000Z");
  EXPECT_EQ(first.at("kind").as_string(), "dhcp-discover");
  EXPECT_FALSE(first.contains("ip"));
  EXPECT_EQ(first.at("detail").as_object().at("arch").as_string(), "x86-64-uefi");
  const auto& second = events[1].as_object();
  EXPECT_EQ(second.at("at").as_string(), "2026-11-18T11:06:41.234Z");
  EXPECT_EQ(second.at("ip").as_string(), "10.0.0.5");
  EXPECT_EQ(recorder::timeline_json("52:54:00:12:34:56", {}),
            R"({"mac":"52:54:00:12:34:56","events":[]})");
}

TEST(RecorderRender, TextShowsTimesRelativeToTheFirstEvent) {
  std::vector<Event> t{
      ev(Kind::dhcp_discover, "52:54:00:12:34:56", {}, 0ms, {{"arch", "x86-64-uefi"}}),
      ev(Kind::dhcp_ack, "52:54:00:12:34:56", "10.0.0.5", 412ms),
      ev(Kind::script_refused, "52:54:00:12:34:56", "10.0.0.9", 61250ms,
         {{"reason", "address does not match"}})};
  EXPECT_EQ(recorder::timeline_text(t),
            "+0.000s dhcp-discover arch=x86-64-uefi\n"
            "+0.412s dhcp-ack ip=10.0.0.5\n"
            "+61.250s script-refused ip=10.0.0.9 reason=\"address does not match\"\n");
  EXPECT_EQ(recorder::timeline_text({}), "");
}

}  // namespace
