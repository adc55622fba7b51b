#include "abaw/video_index.hpp"

#include <gtest/gtest.h>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

using testing::ScratchDir;
using testing::write_text;

const char* kVaHeader = "image_location,valence,arousal\n";

TEST(VideoIndex, FrameListGivesRowsAndFrameCounts) {
  ScratchDir dir;
  write_text(dir / "crops/b/00002.jpg", "x");
  write_text(dir / "crops/a/00001.jpg", "x");
  write_text(dir / "crops/a/00003.jpg", "x");
  write_text(dir / "crops/a/00009.jpg", "x");  // past the end: ignored
  write_text(dir / "va.txt", std::string(kVaHeader) + "b/00001.jpg,0,0\nb/00002.jpg,0,0\na/00001.jpg,0,0\n" +
                                 "a/00002.jpg,0,0\na/00003.jpg,0,0\na/00004.jpg,0,0\n");
  IndexRequest request{dir / "crops", {{Task::kVA}, {{Task::kVA, dir / "va.txt"}}, {}}, {}};
  VideoIndex index = build_video_index(request);
  ASSERT_EQ(index.videos.size(), 2u);
  EXPECT_EQ(index.videos[0].name, "a");
  EXPECT_EQ(index.videos[0].frames, 4);
  ASSERT_EQ(index.videos[0].crops.size(), 2u);
  EXPECT_EQ(index.videos[0].crops[1].frame, 3);
  EXPECT_EQ(index.videos[1].frames, 2);
  EXPECT_EQ(index.rows.at(Task::kVA).rows.front().image_location, "b/00001.jpg");
  EXPECT_EQ(index.total_frames(), 6);
  EXPECT_EQ(index.total_crops(), 3);
}

TEST(VideoIndex, AnnotationsGiveOneRowPerLine) {
  ScratchDir dir;
  write_text(dir / "crops/v_left/00001.jpg", "x");
  write_text(dir / "set/v_left.txt", "valence,arousal\n0,0\n0,0\n-5,-5\n");
  IndexRequest request{dir / "crops", {{Task::kVA}, {}, {{Task::kVA, dir / "set"}}}, {}};
  VideoIndex index = build_video_index(request);
  const auto& rows = index.rows.at(Task::kVA).rows;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].image_location, "v_left/00003.jpg");
  EXPECT_EQ(index.rows.at(Task::kVA).source, RowSource::kAnnotations);
}

TEST(VideoIndex, WithoutListsTheHighestCropNumberIsTheFrameCount) {
  ScratchDir dir;
  write_text(dir / "crops/v/00002.jpg", "x");
  write_text(dir / "crops/v/00005.jpg", "x");
  write_text(dir / "crops/v/notes.txt", "x");
  // Named by a Unix timestamp: taken as a frame it would make a 1.7-billion-row video.
  write_text(dir / "crops/v/1700000000.jpg", "x");
  VideoIndex index = build_video_index(IndexRequest{dir / "crops", {{Task::kAU}, {}, {}}, {}});
  EXPECT_EQ(index.videos.at(0).frames, 5);
  EXPECT_EQ(index.rows.at(Task::kAU).rows.size(), 5u);
}

TEST(VideoIndex, SubsetFiltersVideosAndRejectsUnknownNames) {
  ScratchDir dir;
  write_text(dir / "crops/a/00001.jpg", "x");
  write_text(dir / "crops/b/00001.jpg", "x");
  write_text(dir / "va.txt", std::string(kVaHeader) + "a/00001.jpg,0,0\nb/00001.jpg,0,0\n");
  IndexRequest request{dir / "crops", {{Task::kVA}, {{Task::kVA, dir / "va.txt"}}, {}}, {"b"}};
  VideoIndex index = build_video_index(request);
  ASSERT_EQ(index.videos.size(), 1u);
  EXPECT_EQ(index.videos[0].name, "b");
  request.videos = {"c"};
  EXPECT_THROW(build_video_index(request), Error);
}

TEST(VideoIndex, MissingFolderIsAllMissingButNoCropsAtAllIsAnError) {
  ScratchDir dir;
  write_text(dir / "crops/a/00001.jpg", "x");
  std::filesystem::create_directories(dir / "empty");
  write_text(dir / "va.txt", std::string(kVaHeader) + "a/00001.jpg,0,0\nghost/00001.jpg,0,0\n");
  IndexRequest request{dir / "crops", {{Task::kVA}, {{Task::kVA, dir / "va.txt"}}, {}}, {}};
  VideoIndex index = build_video_index(request);
  EXPECT_FALSE(index.videos[1].has_folder);
  EXPECT_TRUE(index.videos[1].crops.empty());
  request.crops = dir / "empty";
  EXPECT_THROW(build_video_index(request), Error);
}

TEST(VideoIndex, DuplicateFrameNumbersKeepTheCanonicalName) {
  ScratchDir dir;
  write_text(dir / "v/1.jpg", "x");
  write_text(dir / "v/00001.jpg", "x");
  auto crops = scan_crop_folder(dir / "v");
  ASSERT_EQ(crops.size(), 1u);
  EXPECT_EQ(crops[0].path.filename(), "00001.jpg");
}

TEST(VideoIndex, ShardKeepsEveryNthVideoInNameOrderWithItsRows) {
  ScratchDir dir;
  for (const char* video : {"a", "b", "c", "d", "e"}) write_text(dir / "crops" / video / "00001.jpg", "x");
  write_text(dir / "va.txt", std::string(kVaHeader) + "e/00001.jpg,0,0\na/00001.jpg,0,0\nd/00001.jpg,0,0\n" +
                                 "b/00001.jpg,0,0\nc/00001.jpg,0,0\n");
  const IndexRequest request{dir / "crops", {{Task::kVA}, {{Task::kVA, dir / "va.txt"}}, {}}, {}};
  std::vector<std::string> seen;
  for (int k = 1; k <= 2; ++k) {
    VideoIndex index = build_video_index(request);
    keep_shard(index, Shard{k, 2});
    std::string names, rows;
    for (const VideoEntry& video : index.videos) names += video.name.str();
    for (const FrameRow& row : index.rows.at(Task::kVA).rows) rows += row.video.str();
    seen.push_back(names + "|" + rows);
  }
  EXPECT_EQ(seen[0], "ace|eac");  // the rows keep the frame list's order
  EXPECT_EQ(seen[1], "bd|db");
  VideoIndex whole = build_video_index(request);
  keep_shard(whole, Shard{});
  EXPECT_EQ(whole.videos.size(), 5u);
  EXPECT_TRUE(Shard{}.holds(7));
  EXPECT_TRUE(Shard({3, 3}).holds(5));
  EXPECT_FALSE(Shard({3, 3}).holds(4));
}

}  // namespace
}  // namespace abaw
