#include "abaw/writers.hpp"
#include "abaw/raw_scores.hpp"

#include <gtest/gtest.h>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

using testing::read_text;
using testing::ScratchDir;

// The frame-list row of an image location ("v/00001.jpg").
FrameRow row(const std::string& location) {
  const auto parsed = parse_image_location(location);
  return {location, parsed->video, parsed->frame};
}

TEST(AtomicFile, NothingAppearsUntilCommit) {
  ScratchDir dir;
  {
    AtomicFile file(dir / "out/x.txt");
    file.write("partial");
    EXPECT_FALSE(std::filesystem::exists(dir / "out/x.txt"));
  }  // abandoned: no file, no temp left behind
  EXPECT_FALSE(std::filesystem::exists(dir / "out/x.txt"));
  EXPECT_TRUE(std::filesystem::is_empty(dir / "out"));
  write_file_atomically(dir / "out/x.txt", "done\n");
  EXPECT_EQ(read_text(dir / "out/x.txt"), "done\n");
}

TEST(AtomicFile, UnwritableFolderIsAnOutputError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root can write anywhere";
  ScratchDir dir;
  std::filesystem::create_directories(dir / "ro");
  std::filesystem::permissions(dir / "ro", std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  try {
    write_file_atomically(dir / "ro/x.txt", "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOutput);
  }
}

TEST(Writers, SubmissionHasExactHeaderAndRowsInFrameListOrder) {
  ScratchDir dir;
  std::map<std::string, VideoResult> results;
  results["a"].predicted = ScoreMatrix{2, 1, {4, 0}};
  results["b"].predicted = ScoreMatrix{1, 1, {7}};
  std::vector<FrameRow> rows{row("b/00001.jpg"), row("a/00002.jpg"), row("a/00001.jpg")};
  write_submission(dir / "EXPR.txt", Task::kEXPR, rows, results);
  EXPECT_EQ(read_text(dir / "EXPR.txt"),
            "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n"
            "b/00001.jpg,7\na/00002.jpg,0\na/00001.jpg,4\n");
  rows.push_back(row("c/00001.jpg"));
  EXPECT_THROW(write_submission(dir / "EXPR2.txt", Task::kEXPR, rows, results), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "EXPR2.txt"));
}

TEST(Writers, VaAndAuRows) {
  ScratchDir dir;
  std::map<std::string, VideoResult> va;
  va["v"].predicted = ScoreMatrix{1, 2, {0.5f, -1.0f}};
  write_submission(dir / "VA.txt", Task::kVA, {row("v/00001.jpg")}, va);
  EXPECT_EQ(read_text(dir / "VA.txt"), "image_location,valence,arousal\nv/00001.jpg,0.500000,-1.000000\n");
  std::map<std::string, VideoResult> au;
  au["v"].predicted = ScoreMatrix{1, 12, {1, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 1}};
  write_submission(dir / "AU.txt", Task::kAU, {row("v/00001.jpg")}, au);
  EXPECT_EQ(read_text(dir / "AU.txt"),
            "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n"
            "v/00001.jpg,1,0,1,1,1,0,0,1,0,0,0,1\n");
}

TEST(Writers, RawScoresRoundTripFloats) {
  ScratchDir dir;
  VideoResult result;
  result.raw = ScoreMatrix{2, 2, {0.123456789f, -1e-7f, 1, 0}};
  result.has_crop = {1, 0};
  write_raw_scores(dir / "v.csv", Task::kVA, result);
  const std::string text = read_text(dir / "v.csv");
  EXPECT_EQ(text.substr(0, text.find('\n')), "frame,has_crop,valence,arousal");
  float value = 0;
  ASSERT_EQ(std::sscanf(text.c_str() + text.find("\n1,1,") + 5, "%f", &value), 1);
  EXPECT_EQ(value, 0.123456789f);
  EXPECT_NE(text.find("\n2,0,1,0\n"), std::string::npos);
}

}  // namespace
}  // namespace abaw
