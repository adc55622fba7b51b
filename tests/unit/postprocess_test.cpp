#include "abaw/postprocess.hpp"

#include <gtest/gtest.h>

namespace abaw {
namespace {

ScoreMatrix column(std::vector<float> values) {
  return ScoreMatrix{static_cast<long>(values.size()), 1, std::move(values)};
}

TEST(Postprocess, NearestPresentPrefersTheEarlierFrameOnTies) {
  EXPECT_EQ(nearest_present({0, 1, 0, 0, 1, 0}), (std::vector<long>{1, 1, 1, 4, 4, 4}));
  EXPECT_EQ(nearest_present({0, 0, 1}), (std::vector<long>{2, 2, 2}));
  EXPECT_EQ(nearest_present({1, 0, 1}), (std::vector<long>{0, 0, 2}));
}

TEST(Postprocess, InterpolationIsLinearInsideAndHoldsAtTheEnds) {
  ScoreMatrix compact = column({2, 6, 10});
  ScoreMatrix full = interpolate_missing(compact, {0, 1, 0, 1, 0, 0, 1, 0});
  EXPECT_EQ(full.values, (std::vector<float>{2, 2, 4, 6, 22.0f / 3, 26.0f / 3, 10, 10}));
}

TEST(Postprocess, MeanFilterIsCentredAndTruncated) {
  ScoreMatrix scores = column({0, 3, 6, 9});
  EXPECT_EQ(mean_filter(scores, 3).values, (std::vector<float>{1.5, 3, 6, 7.5}));
  // Even width w covers i - w/2 .. i + w/2 - 1.
  EXPECT_EQ(mean_filter(scores, 2).values, (std::vector<float>{0, 1.5, 4.5, 7.5}));
  EXPECT_EQ(mean_filter(scores, 1).values, scores.values);
  EXPECT_EQ(mean_filter(scores, 100).values, (std::vector<float>{4.5, 4.5, 4.5, 4.5}));
}

TEST(Postprocess, ArgmaxAndModeFilterBreakTiesTowardsTheLowestLabel) {
  ScoreMatrix scores{2, 3, {0.2f, 0.4f, 0.4f, 0.5f, 0.1f, 0.5f}};
  EXPECT_EQ(argmax_labels(scores), (std::vector<int>{1, 0}));
  EXPECT_EQ(mode_filter({2, 2, 1, 2, 1, 1, 1}, 3, 8), (std::vector<int>{2, 2, 2, 1, 1, 1, 1}));
  EXPECT_EQ(mode_filter({3, 1}, 2, 8), (std::vector<int>{3, 1}));
  EXPECT_EQ(mode_filter({3, 1, 5}, 0, 8), (std::vector<int>{3, 1, 5}));
}

TEST(Postprocess, FinalizeClipsVa) {
  TaskConfig va;
  va.task = Task::kVA;
  ScoreMatrix raw{2, 2, {1.5f, -0.25f, -3.0f, 0.5f}};
  EXPECT_EQ(finalize_predictions(va, raw).values, (std::vector<float>{1, -0.25f, -1, 0.5f}));
}

TEST(Postprocess, FinalizeNeverPicksAnUnmappedExprClass) {
  TaskConfig expr;
  expr.task = Task::kEXPR;
  expr.class_map = {0, 1, 2, 3, 4, 5, 6, -1};
  ScoreMatrix raw{1, 8, {-2, -1, -3, -3, -3, -3, -3, 0}};  // "probabilities" of a head with activation none
  EXPECT_EQ(finalize_predictions(expr, raw).values, (std::vector<float>{1}));
}

TEST(Postprocess, FinalizeAppliesPerAuThresholds) {
  TaskConfig au;
  au.task = Task::kAU;
  au.thresholds = std::vector<float>(12, 0.5f);
  au.thresholds[0] = 0.8f;
  std::vector<float> probabilities(12, 0.5f);
  probabilities[0] = 0.79f;
  probabilities[1] = 0.49f;
  ScoreMatrix out = finalize_predictions(au, ScoreMatrix{1, 12, probabilities});
  EXPECT_EQ(out.values[0], 0);
  EXPECT_EQ(out.values[1], 0);
  EXPECT_EQ(out.values[2], 1);
}

}  // namespace
}  // namespace abaw
