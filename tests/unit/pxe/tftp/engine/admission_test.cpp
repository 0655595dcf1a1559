#include "pxe/tftp/engine/admission.hpp"

#include <gtest/gtest.h>

namespace {

using lab::pxe::tftp::engine::Admission;
using Verdict = Admission::Verdict;

TEST(TftpAdmission, OneAddressGetsItsShareAndOthersStillGetIn) {
  Admission a(128, 8);
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(a.check("10.0.0.5"), Verdict::admit) << i;
    a.started("10.0.0.5");
  }
  EXPECT_EQ(a.check("10.0.0.5"), Verdict::client_busy);
  EXPECT_EQ(a.check("10.0.0.6"), Verdict::admit);
  EXPECT_EQ(a.running(), 8U);
  EXPECT_EQ(a.running_from("10.0.0.5"), 8U);
  EXPECT_EQ(a.running_from("10.0.0.6"), 0U);
  // One ends: the address may start one more.
  a.ended("10.0.0.5");
  EXPECT_EQ(a.check("10.0.0.5"), Verdict::admit);
  EXPECT_EQ(a.running(), 7U);
}

TEST(TftpAdmission, TheTotalLimitComesFirst) {
  Admission a(3, 2);
  a.started("10.0.0.5");
  a.started("10.0.0.5");
  a.started("10.0.0.6");
  EXPECT_EQ(a.check("10.0.0.7"), Verdict::server_busy);
  EXPECT_EQ(a.check("10.0.0.5"), Verdict::server_busy);
  a.ended("10.0.0.6");
  EXPECT_EQ(a.check("10.0.0.5"), Verdict::client_busy);
  EXPECT_EQ(a.check("10.0.0.6"), Verdict::admit);
  a.ended("10.0.0.5");
  a.ended("10.0.0.5");
  EXPECT_EQ(a.running(), 0U);
  EXPECT_EQ(a.running_from("10.0.0.5"), 0U);
}

}  // namespace
