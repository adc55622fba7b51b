#include "abaw/windows.hpp"

#include <gtest/gtest.h>

namespace abaw {
namespace {

std::vector<std::pair<long, long>> plan(long frames, long window, long stride, Merge merge) {
  SequenceConfig sequence{window, stride, merge, MissingFrames::kZeroFeature};
  std::vector<std::pair<long, long>> out;
  for (const auto& w : plan_windows(frames, sequence)) out.emplace_back(w.begin, w.end);
  return out;
}

using Plan = std::vector<std::pair<long, long>>;

TEST(Windows, ConcatenateCutsConsecutiveWindowsWithAShortLastOne) {
  EXPECT_EQ(plan(20, 8, 8, Merge::kConcatenate), (Plan{{0, 8}, {8, 16}, {16, 20}}));
  EXPECT_EQ(plan(16, 8, 8, Merge::kConcatenate), (Plan{{0, 8}, {8, 16}}));
}

TEST(Windows, ShortVideosGetOneWindow) {
  EXPECT_EQ(plan(1, 300, 300, Merge::kConcatenate), (Plan{{0, 1}}));
  EXPECT_EQ(plan(5, 8, 3, Merge::kMean), (Plan{{0, 5}}));
  EXPECT_TRUE(plan(0, 8, 8, Merge::kConcatenate).empty());
}

TEST(Windows, MeanAlignsTheLastWindowToTheEnd) {
  EXPECT_EQ(plan(10, 4, 3, Merge::kMean), (Plan{{0, 4}, {3, 7}, {6, 10}}));
  EXPECT_EQ(plan(11, 4, 3, Merge::kMean), (Plan{{0, 4}, {3, 7}, {6, 10}, {7, 11}}));
  EXPECT_EQ(plan(9, 4, 4, Merge::kMean), (Plan{{0, 4}, {4, 8}, {5, 9}}));
}

TEST(Windows, MergerAveragesOverlaps) {
  WindowMerger merger(4, 1);
  const float first[] = {1, 2, 3};
  const float second[] = {5, 7, 9};
  merger.add({0, 3}, first);
  merger.add({1, 4}, second);
  EXPECT_EQ(merger.finish(), (std::vector<float>{1, 3.5, 5, 9}));
}

TEST(Windows, MergerRefusesUncoveredFrames) {
  WindowMerger merger(3, 1);
  const float scores[] = {1, 2};
  merger.add({0, 2}, scores);
  EXPECT_ANY_THROW(merger.finish());
}

TEST(Windows, InvalidCombinationsAreRejected) {
  EXPECT_ANY_THROW(validate_sequence({8, 4, Merge::kConcatenate, MissingFrames::kZeroFeature}, "test"));
  EXPECT_ANY_THROW(validate_sequence({4, 8, Merge::kMean, MissingFrames::kZeroFeature}, "test"));
  EXPECT_ANY_THROW(validate_sequence({0, 0, Merge::kMean, MissingFrames::kZeroFeature}, "test"));
  EXPECT_NO_THROW(validate_sequence({8, 4, Merge::kMean, MissingFrames::kZeroFeature}, "test"));
}

}  // namespace
}  // namespace abaw
