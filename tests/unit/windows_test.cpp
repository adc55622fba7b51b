#include "abaw/windows.hpp"

#include <gtest/gtest.h>

#include <tuple>

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
  EXPECT_ANY_THROW(
      validate_sequence({8, 4, Merge::kConcatenate, MissingFrames::kZeroFeature}, "test", ErrorKind::kUsage));
  EXPECT_ANY_THROW(validate_sequence({4, 8, Merge::kMean, MissingFrames::kZeroFeature}, "test", ErrorKind::kUsage));
  EXPECT_ANY_THROW(validate_sequence({0, 0, Merge::kMean, MissingFrames::kZeroFeature}, "test", ErrorKind::kUsage));
  EXPECT_NO_THROW(validate_sequence({8, 4, Merge::kMean, MissingFrames::kZeroFeature}, "test", ErrorKind::kUsage));
}

// Batches as (video, begin, end) triples, one inner list per batch.
using BatchPlan = std::vector<std::vector<std::tuple<size_t, size_t, size_t>>>;

BatchPlan batches(const std::vector<size_t>& counts, size_t batch_size, bool pack) {
  BatchPlan out;
  for (const auto& batch : plan_encoder_batches(counts, batch_size, pack)) {
    out.emplace_back();
    for (const auto& span : batch) out.back().emplace_back(span.video, span.begin, span.end);
  }
  return out;
}

TEST(EncoderBatches, PerVideoBatchesStartAtEachVideo) {
  EXPECT_EQ(batches({5, 0, 2, 4}, 4, false), (BatchPlan{{{0, 0, 4}}, {{0, 4, 5}}, {{2, 0, 2}}, {{3, 0, 4}}}));
}

TEST(EncoderBatches, PackedBatchesContinueIntoTheNextVideo) {
  EXPECT_EQ(batches({5, 0, 2, 4}, 4, true), (BatchPlan{{{0, 0, 4}}, {{0, 4, 5}, {2, 0, 2}, {3, 0, 1}}, {{3, 1, 4}}}));
  // A video longer than several batches, then short ones filling one batch.
  EXPECT_EQ(batches({9, 1, 1, 1}, 4, true),
            (BatchPlan{{{0, 0, 4}}, {{0, 4, 8}}, {{0, 8, 9}, {1, 0, 1}, {2, 0, 1}, {3, 0, 1}}}));
}

TEST(EncoderBatches, EveryCropOnceInOrderWithinTheBatchSize) {
  const std::vector<size_t> counts{0, 7, 1, 30, 0, 3, 64, 2};
  for (bool pack : {false, true}) {
    for (size_t batch_size : {1, 2, 3, 8, 64, 1000}) {
      size_t video = 0, next = 0, total = 0, batches_seen = 0;
      const auto plan = plan_encoder_batches(counts, batch_size, pack);
      for (const auto& batch : plan) {
        size_t size = 0;
        for (const auto& span : batch) {
          while (video < counts.size() && next == counts[video]) ++video, next = 0;
          ASSERT_EQ(span.video, video);
          ASSERT_EQ(span.begin, next);
          ASSERT_GT(span.end, span.begin);
          next = span.end;
          size += span.size();
        }
        ASSERT_LE(size, batch_size);
        // Packed: only the last batch may be short.
        if (pack && ++batches_seen < plan.size()) ASSERT_EQ(size, batch_size);
        if (!pack) ASSERT_EQ(batch.size(), 1u);
        total += size;
      }
      EXPECT_EQ(total, 107u) << "batch " << batch_size << (pack ? " packed" : "");
    }
  }
  EXPECT_TRUE(plan_encoder_batches({0, 0}, 4, true).empty());
  EXPECT_ANY_THROW(plan_encoder_batches({1}, 0, false));
}

}  // namespace
}  // namespace abaw
