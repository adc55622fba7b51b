#include "abaw/annotations.hpp"

#include <gtest/gtest.h>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

using testing::ScratchDir;
using testing::write_text;

// Asserts that `body` throws an abaw::Error whose location is file:line.
template <typename F>
void expect_error_at(F body, const std::filesystem::path& file, long line, const std::string& fragment) {
  try {
    body();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.path(), file.string());
    EXPECT_EQ(e.line(), line) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Headers, RecognisesEveryTaskAndTheQuotedExprHeader) {
  EXPECT_EQ(match_header("valence,arousal")->task, Task::kVA);
  auto sub = match_header("image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26");
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->task, Task::kAU);
  EXPECT_TRUE(sub->submission);
  auto quoted = match_header("image_location,\"Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\"");
  ASSERT_TRUE(quoted);
  EXPECT_EQ(quoted->task, Task::kEXPR);
  EXPECT_TRUE(quoted->quoted);
  EXPECT_FALSE(match_header("image_location,valence").has_value());
  EXPECT_FALSE(match_header("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise").has_value());
}

TEST(FrameList, KeepsRowsInFileOrderWithWindowsLineEndings) {
  ScratchDir dir;
  write_text(dir / "va.txt",
             "image_location,valence,arousal\r\nb/00002.jpg,0.5,-0.5\r\na/00001.jpg,\r\nb/00001.jpg,0.5,-0.5");
  FrameList list = read_frame_list(dir / "va.txt");
  EXPECT_EQ(list.task, Task::kVA);
  ASSERT_EQ(list.rows.size(), 3u);
  EXPECT_EQ(list.rows[0].image_location, "b/00002.jpg");
  EXPECT_EQ(list.rows[1].video, "a");
  EXPECT_EQ(list.rows[2].frame, 1);
}

TEST(FrameList, NamesTheLineOfABadRow) {
  ScratchDir dir;
  write_text(dir / "expr.txt",
             "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\nv/00001.jpg,0\nv/x.jpg,0\n");
  expect_error_at([&] { read_frame_list(dir / "expr.txt"); }, dir / "expr.txt", 3, "video/NNNNN.jpg");
}

TEST(FrameList, RejectsAnotherTasksHeaderAndEmptyFiles) {
  ScratchDir dir;
  write_text(dir / "va.txt", "image_location,valence,arousal\nv/00001.jpg,0,0\n");
  expect_error_at([&] { read_frame_list(dir / "va.txt", Task::kAU); }, dir / "va.txt", 1, "expected AU");
  write_text(dir / "empty.txt", "");
  expect_error_at([&] { read_frame_list(dir / "empty.txt"); }, dir / "empty.txt", 0, "empty");
  write_text(dir / "annotation.txt", "valence,arousal\n0.1,0.2\n");
  expect_error_at([&] { read_frame_list(dir / "annotation.txt"); }, dir / "annotation.txt", 1, "not a frame list");
}

TEST(AnnotationFile, ReadsValuesAndInvalidMarkers) {
  ScratchDir dir;
  write_text(dir / "v.txt", "valence,arousal\n0.148,0.352\n-5,-5\n-1,1");
  AnnotationFile file = read_annotation_file(dir / "v.txt");
  EXPECT_EQ(file.task, Task::kVA);
  EXPECT_EQ(file.frames, 3);
  EXPECT_FLOAT_EQ(file.values[0], 0.148f);
  EXPECT_FLOAT_EQ(file.values[2], -5.0f);
  EXPECT_FLOAT_EQ(file.values[5], 1.0f);
}

TEST(AnnotationFile, NamesFileAndLineOfMalformedValues) {
  ScratchDir dir;
  const auto au = dir / "au.txt";
  write_text(au, "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n0,0,0,0,0,0,0,0,0,0,0,0\n0,1,0\n");
  expect_error_at([&] { read_annotation_file(au); }, au, 3, "expected 12 values, found 3");
  write_text(au, "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n0,0,0,0,0,0,0,0,0,0,0,2\n");
  expect_error_at([&] { read_annotation_file(au); }, au, 2, "value 12");
  const auto expr = dir / "expr.txt";
  write_text(expr, "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n3\n8\n");
  expect_error_at([&] { read_annotation_file(expr); }, expr, 3, "0..7");
  write_text(expr, "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n3\n\n4\n");
  expect_error_at([&] { read_annotation_file(expr); }, expr, 3, "blank line");
  const auto va = dir / "va.txt";
  write_text(va, "valence,arousal\n0.1,nan\n");
  expect_error_at([&] { read_annotation_file(va); }, va, 2, "value 2");
  write_text(va, "valence,arousal\n0.1,0.2,\n");
  expect_error_at([&] { read_annotation_file(va); }, va, 2, "expected 2 values, found 3");
}

TEST(AnnotationFolder, CountsFramesPerVideoAndDetectsTheTask) {
  ScratchDir dir;
  write_text(dir / "set/a.txt", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n1\n-1\n");
  write_text(dir / "set/b_left.txt", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n7\n");
  write_text(dir / "set/readme.md", "ignored");
  write_text(dir / "set/._a.txt", "\x00\x05\x16\x07 a macOS resource fork");  // hidden: skipped
  EXPECT_EQ(annotation_folder_task(dir / "set"), Task::kEXPR);
  AnnotationFolder folder = read_annotation_folder(dir / "set");
  EXPECT_EQ(folder.task, Task::kEXPR);
  EXPECT_EQ(folder.frame_counts.at("a"), 3);
  EXPECT_EQ(folder.frame_counts.at("b_left"), 1);
  write_text(dir / "set/c.txt", "valence,arousal\n0,0\n");
  expect_error_at([&] { read_annotation_folder(dir / "set"); }, dir / "set/c.txt", 1, "expected EXPR");
  std::filesystem::remove(dir / "set/c.txt");
  write_text(dir / "set/-c.txt", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n7\n");
  expect_error_at([&] { read_annotation_folder(dir / "set"); }, dir / "set/-c.txt", 0, "starts with '-'");
}

TEST(VideoList, OneNamePerLine) {
  ScratchDir dir;
  write_text(dir / "list.txt", "2-30-640x360\r\n\r\n10-60-1280x720_right\n2-30-640x360\n");
  EXPECT_EQ(read_video_list(dir / "list.txt"), (std::vector<std::string>{"2-30-640x360", "10-60-1280x720_right"}));
  write_text(dir / "bad.txt", "a\nb/00001.jpg,0\n");
  expect_error_at([&] { read_video_list(dir / "bad.txt"); }, dir / "bad.txt", 2, "one video name per line");
}

}  // namespace
}  // namespace abaw
