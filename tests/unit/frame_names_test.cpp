#include "abaw/frame_names.hpp"

#include "abaw/error.hpp"

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
  for (const char* name :
       {"00000.jpg", "abc.jpg", "00001.txt", ".jpg", "0001a.jpg", "-0001.jpg", "00001", "12345678901.jpg",
        "00001.jpg.tmp", "10000000.jpg", "1700000000.jpg"}) {  // past kMaxFrameNumber: e.g. a Unix timestamp
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

// Every form of issue 21's path traversal: none may become a video name.
TEST(VideoNames, RejectsEveryNameThatIsNotOneHarmlessPathComponent) {
  const std::string long_name(kMaxVideoNameBytes + 1, 'a');
  for (std::string name : {std::string(), std::string("."), std::string(".."), std::string("/abs"), std::string("a/b"),
                           std::string("a\\b"), std::string("..\\x"), std::string("-rf"), std::string(".hidden"),
                           std::string("vid,B"), std::string("tab\there"), std::string("new\nline"),
                           std::string("nul\0byte", 8), std::string("del\x7f"), long_name}) {
    EXPECT_FALSE(video_name_problem(name).empty()) << name;
    EXPECT_FALSE(VideoName::parse(name).has_value()) << name;
  }
  for (const char* name :
       {"2-30-640x360", "10-60-1280x720_right", "video.with.dots", "a..b", "UPPER case", "\xc3\xa9t\xc3\xa9"}) {
    EXPECT_EQ(video_name_problem(name), "") << name;
  }
  EXPECT_EQ(video_name_problem(std::string(kMaxVideoNameBytes, 'a')), "");
}

TEST(VideoNames, CheckedNamesTheFileLineAndProblemAndHidesControlBytes) {
  try {
    VideoName::checked("bad\x01name/x", "list.txt", 7, "one name per line");
    FAIL() << "accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("list.txt:7"), std::string::npos) << message;
    EXPECT_NE(message.find("bad?name/x"), std::string::npos) << message;
    EXPECT_NE(message.find("one name per line"), std::string::npos) << message;
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
  }
}

TEST(VideoNames, PathsStayInsideTheirFolder) {
  const VideoName name = VideoName::checked("vidA");
  EXPECT_EQ(video_path("/out/raw/VA", name, ".csv"), std::filesystem::path("/out/raw/VA/vidA.csv"));
  EXPECT_THROW(video_path("/out", VideoName(), ".csv"), Error);
  EXPECT_THROW(video_path("/out", name, "/../x"), Error);
  EXPECT_EQ(video_name_of_file("/some/annotations/vidB.txt"), "vidB");
  EXPECT_THROW(video_name_of_file("/some/annotations/-x.txt"), Error);
}

TEST(FrameNames, ImageLocationsWithHostileVideoPartsAreRejectedWithTheReason) {
  for (const char* location : {"/some/dir/notes/00001.jpg", "../trav/00001.jpg", "./00001.jpg", "../../x/00001.jpg",
                               "vidA/../vidB/00001.jpg", "-x/00001.jpg", "a\\b/00001.jpg", "vid,B/00001.jpg"}) {
    std::string problem;
    EXPECT_FALSE(parse_image_location(location, &problem).has_value()) << location;
    EXPECT_FALSE(problem.empty()) << location;
  }
}

}  // namespace abaw
