#include "abaw/frame_names.hpp"

#include <gtest/gtest.h>

namespace abaw {

TEST(FrameNames, ParsesFiveDigitAndPlainNumbers) {
  EXPECT_EQ(parse_crop_file_name("00001.jpg"), 1);
  EXPECT_EQ(parse_crop_file_name("00042.JPG"), 42);
  EXPECT_EQ(parse_crop_file_name("123456.jpg"), 123456);
  EXPECT_EQ(parse_crop_file_name("7.png"), 7);
  EXPECT_EQ(parse_crop_file_name("9999999.jpg"), kMaxFrameNumber);
  EXPECT_EQ(parse_crop_file_name("0009999999.jpg"), kMaxFrameNumber);
}

TEST(FrameNames, RejectsNamesThatAreNotFrameNumbers) {
  for (const char* name : {"00000.jpg", "abc.jpg", "00001.txt", ".jpg", "0001a.jpg", "-0001.jpg", "00001",
                           "12345678901.jpg", "00001.jpg.tmp",
                           "10000000.jpg", "1700000000.jpg"}) {  // past kMaxFrameNumber: e.g. a Unix timestamp
    EXPECT_FALSE(parse_crop_file_name(name).has_value()) << name;
  }
}

TEST(FrameNames, FormatsLikeAffWild2) {
  EXPECT_EQ(format_crop_file_name(1), "00001.jpg");
  EXPECT_EQ(format_crop_file_name(99999), "99999.jpg");
  EXPECT_EQ(format_crop_file_name(100000), "100000.jpg");
  EXPECT_EQ(format_image_location("2-30-640x360", 5), "2-30-640x360/00005.jpg");
}

TEST(FrameNames, ParsesImageLocations) {
  auto location = parse_image_location("10-60-1280x720_right/00123.jpg");
  ASSERT_TRUE(location.has_value());
  EXPECT_EQ(location->video, "10-60-1280x720_right");
  EXPECT_EQ(location->frame, 123);
  EXPECT_FALSE(parse_image_location("00123.jpg").has_value());
  EXPECT_FALSE(parse_image_location("/00123.jpg").has_value());
  EXPECT_FALSE(parse_image_location("video/frame.jpg").has_value());
}

}  // namespace abaw
