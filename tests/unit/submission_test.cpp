#include "abaw/submission.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

using testing::ScratchDir;
using testing::write_text;

const char* kExprHeader = "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other";

std::string parse_problem(Task task, std::vector<std::string> fields, std::string* kind) {
  float out[12];
  return parse_prediction_values(task, fields, out, kind);
}

TEST(Submission, ValuesAreParsedAndRangeChecked) {
  std::string kind;
  EXPECT_EQ(parse_problem(Task::kVA, {"0.5", "-1"}, &kind), "");
  EXPECT_NE(parse_problem(Task::kVA, {"1.5", "0"}, &kind), "");
  EXPECT_EQ(kind, "range");
  EXPECT_NE(parse_problem(Task::kVA, {"nan", "0"}, &kind), "");
  EXPECT_EQ(kind, "range");
  EXPECT_NE(parse_problem(Task::kEXPR, {"x"}, &kind), "");
  EXPECT_EQ(kind, "value");
  EXPECT_NE(parse_problem(Task::kEXPR, {"8"}, &kind), "");
  EXPECT_EQ(kind, "range");
  EXPECT_NE(parse_problem(Task::kEXPR, {"3", ""}, &kind).find("trailing comma"), std::string::npos);
  EXPECT_EQ(kind, "columns");
  EXPECT_NE(parse_problem(Task::kAU, std::vector<std::string>(11, "0"), &kind), "");
  EXPECT_EQ(kind, "columns");
}

TEST(Submission, ReadsSingleFileLegacyAndRawPredictions) {
  ScratchDir dir;
  write_text(dir / "sub.txt", std::string(kExprHeader) + "\r\nb/00002.jpg,4\r\nb/00001.jpg,0");
  PredictionSet single = read_predictions(dir / "sub.txt", Task::kEXPR);
  ASSERT_EQ(single.videos.at("b").size(), 2u);
  ASSERT_NE(single.videos.at("b").find(2), nullptr);
  EXPECT_EQ(single.videos.at("b").find(2)[0], 4);
  write_text(dir / "legacy/a.txt", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n6\n7\n");
  write_text(dir / "legacy/c.csv",
             "frame,has_crop,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n"
             "1,1,0.1,0.1,0.1,0.1,0.1,0.1,0.3,0.1\n");
  PredictionSet folder = read_predictions(dir / "legacy", Task::kEXPR);
  EXPECT_EQ(folder.videos.at("a").find(2)[0], 7);
  EXPECT_EQ(folder.videos.at("c").find(1)[0], 6);
}

// Found by fuzz_submission: rows were stored densely up to the largest frame number, so one
// typo'd frame number allocated up to 40 GB (10 digits, EXPR) before anything was checked.
TEST(Submission, MemoryFollowsRowsNotFrameNumbers) {
  ScratchDir dir;
  write_text(dir / "sub.txt", std::string(kExprHeader) + "\nv/00001.jpg,3\nv/9999999.jpg,5\n");
  PredictionSet set = read_predictions(dir / "sub.txt", Task::kEXPR);
  const VideoPredictions& v = set.videos.at("v");
  EXPECT_EQ(v.size(), 2u);
  EXPECT_EQ(v.values.size(), 2u);
  EXPECT_EQ(v.find(kMaxFrameNumber)[0], 5);
  EXPECT_EQ(v.find(1)[0], 3);
  EXPECT_EQ(v.find(2), nullptr);
  write_text(dir / "past.txt", std::string(kExprHeader) + "\nv/00001.jpg,3\nv/1700000000.jpg,5\n");
  try {
    read_predictions(dir / "past.txt", Task::kEXPR);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_NE(std::string(e.what()).find("(frame 1 to 9999999) first, got 'v/1700000000.jpg'"), std::string::npos)
        << e.what();
  }
}

TEST(Submission, DuplicatePredictionsAndOtherHeadersAreErrors) {
  ScratchDir dir;
  write_text(dir / "dup.txt", std::string(kExprHeader) + "\nv/00001.jpg,1\nv/00001.jpg,2\n");
  try {
    read_predictions(dir / "dup.txt", Task::kEXPR);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.line(), 3);
  }
  write_text(dir / "va.txt", "image_location,valence,arousal\nv/00001.jpg,0,0\n");
  EXPECT_THROW(read_predictions(dir / "va.txt", Task::kAU), Error);
}

TEST(Submission, CheckReportsEveryProblemWithItsLine) {
  ScratchDir dir;
  write_text(dir / "list.txt",
             std::string(kExprHeader) + "\nv/00001.jpg,0\nv/00002.jpg,0\nv/00003.jpg,0\nv/00004.jpg,0\n");
  const FrameList list = read_frame_list(dir / "list.txt", Task::kEXPR);
  write_text(dir / "ok.txt", std::string(kExprHeader) + "\nv/00001.jpg,0\nv/00002.jpg,1\nv/00003.jpg,2\nv/00004.jpg,7");
  EXPECT_TRUE(check_submission(dir / "ok.txt", Task::kEXPR, list).valid());
  write_text(dir / "bad.txt", std::string(kExprHeader) +
                                  "\nv/00002.jpg,1\nv/00001.jpg,0\nv/00002.jpg,1\nw/00001.jpg,1\nv/00003.jpg,9\n");
  const SubmissionCheck check = check_submission(dir / "bad.txt", Task::kEXPR, list);
  std::vector<std::pair<std::string, long>> found;
  for (const auto& p : check.problems) found.emplace_back(p.kind, p.line);
  EXPECT_EQ(found, (std::vector<std::pair<std::string, long>>{
                       {"order", 3}, {"duplicate_row", 4}, {"unknown_row", 5}, {"range", 6}, {"missing_row", 5}}));
}

TEST(Submission, CheckAcceptsTheQuotedExprHeaderWithAWarning) {
  ScratchDir dir;
  write_text(dir / "list.txt", std::string(kExprHeader) + "\nv/00001.jpg,\n");
  const FrameList list = read_frame_list(dir / "list.txt", Task::kEXPR);
  write_text(dir / "quoted.txt",
             "image_location,\"Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\"\nv/00001.jpg,3\n");
  const SubmissionCheck check = check_submission(dir / "quoted.txt", Task::kEXPR, list);
  EXPECT_TRUE(check.valid());
  EXPECT_EQ(check.warnings.size(), 1u);
  write_text(dir / "au_header.txt",
             "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\nv/00001.jpg,3\n");
  const SubmissionCheck wrong = check_submission(dir / "au_header.txt", Task::kEXPR, list);
  ASSERT_FALSE(wrong.valid());
  EXPECT_EQ(wrong.problems[0].kind, "header");
  EXPECT_NE(wrong.problems[0].message.find("AU submission"), std::string::npos);
}

}  // namespace
}  // namespace abaw
