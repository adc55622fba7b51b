#include "abaw/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

TEST(Metrics, CccUsesPopulationMoments) {
  // x = [1,2,3], y = [2,2,4]: means 2, 8/3; var_x 2/3, var_y 8/9, cov 2/3.
  const double expected = 2 * (2.0 / 3) / (2.0 / 3 + 8.0 / 9 + (2 - 8.0 / 3) * (2 - 8.0 / 3));
  EXPECT_NEAR(concordance_correlation({1, 2, 3}, {2, 2, 4}), expected, 1e-12);
  EXPECT_NEAR(concordance_correlation({0.1, 0.5, -0.3}, {0.1, 0.5, -0.3}), 1.0, 1e-12);
}

TEST(Metrics, CccOfConstantSeriesIsZeroNotNan) {
  // The mean of three 0.2s is not exactly 0.2 in binary: allow rounding, never NaN.
  EXPECT_NEAR(concordance_correlation({0.2, 0.2, 0.2}, {0.1, 0.5, -0.3}), 0.0, 1e-15);
  EXPECT_EQ(concordance_correlation({0.2, 0.2}, {0.2, 0.2}), 0.0);
  EXPECT_EQ(concordance_correlation({}, {}), 0.0);
  EXPECT_EQ(concordance_correlation({0.5}, {0.1}), 0.0);
}

TEST(Metrics, ExprF1AveragesAllEightClasses) {
  // Labels use classes 0 and 4 only; predictions 0, 4 and 6.
  Evaluation e = score_frames(Task::kEXPR, {0, 0, 4, 6}, {0, 4, 4, 4});
  EXPECT_NEAR(e.parts[0].score, 2.0 * 1 / (2 + 1 + 0), 1e-12);  // TP 1, FP 1
  EXPECT_NEAR(e.parts[4].score, 2.0 * 1 / (2 + 0 + 2), 1e-12);  // TP 1, FN 2
  EXPECT_EQ(e.parts[6].score, 0.0);                             // FP 1 only
  EXPECT_EQ(e.parts[7].score, 0.0);                             // absent everywhere, still counted
  EXPECT_NEAR(e.score, (2.0 / 3 + 0.5) / 8, 1e-12);
  EXPECT_EQ(e.frames_evaluated, 4);
}

TEST(Metrics, AuSkipsPerAuInvalidLabels) {
  std::vector<float> labels(24, 0), predictions(24, 0);
  labels[0] = 1;  // frame 1 AU1 positive, predicted positive
  predictions[0] = 1;
  labels[12] = -1;  // frame 2 AU1 not annotated, prediction ignored
  predictions[12] = 1;
  Evaluation e = score_frames(Task::kAU, predictions, labels);
  EXPECT_EQ(e.parts[0].score, 1.0);
  EXPECT_EQ(e.parts[0].frames, 1);
  EXPECT_EQ(e.parts[1].frames, 2);
  EXPECT_NEAR(e.score, 1.0 / 12, 1e-12);
}

TEST(Metrics, EvaluateNamesTheFirstFrameWithoutPrediction) {
  testing::ScratchDir dir;
  testing::write_text(dir / "ann/v.txt", "valence,arousal\n0.1,0.2\n-5,-5\n0.3,0.1\n");
  testing::write_text(dir / "pred.txt", "image_location,valence,arousal\nv/00001.jpg,0.1,0.2\n");
  const PredictionSet predictions = read_predictions(dir / "pred.txt", Task::kVA);
  try {
    evaluate(predictions, dir / "ann", false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("v/00003.jpg"), std::string::npos) << e.what();
    EXPECT_EQ(e.line(), 4);
  }
  Evaluation e = evaluate(predictions, dir / "ann", true);
  EXPECT_EQ(e.frames_without_prediction, 1);
  EXPECT_EQ(e.frames_excluded, 1);
  EXPECT_EQ(e.frames_evaluated, 1);
}

}  // namespace
}  // namespace abaw
