// The geometry behind `crop --detector tiny` and `--style aligned`: overlap suppression, the
// five points taken from 68 landmarks, the least-squares similarity transform, and the aligned
// crop itself (dots drawn where a rotated, scaled face's points are must land on the template).
// The networks themselves are checked against face-api in tests/e2e/test_face_models.py.
#include "abaw/face_models.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <opencv2/imgproc.hpp>
#include <torch/script.h>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

// Rotation by `degrees`, uniform `scale`, then a shift.
cv::Matx23d similarity(double degrees, double scale, cv::Point2d shift) {
  const double r = degrees * CV_PI / 180.0, c = std::cos(r) * scale, s = std::sin(r) * scale;
  return cv::Matx23d(c, -s, shift.x, s, c, shift.y);
}

cv::Point2f apply(const cv::Matx23d& m, cv::Point2f p) {
  return cv::Point2f(static_cast<float>(m(0, 0) * p.x + m(0, 1) * p.y + m(0, 2)),
                     static_cast<float>(m(1, 0) * p.x + m(1, 1) * p.y + m(1, 2)));
}

// 68 landmarks whose five alignment points are `five` (every eye point at its eye's centre).
FaceLandmarks landmarks_with(const std::array<cv::Point2f, 5>& five) {
  FaceLandmarks landmarks;
  landmarks.fill(cv::Point2f(0, 0));
  for (int p = 36; p < 42; ++p) landmarks[p] = five[0];
  for (int p = 42; p < 48; ++p) landmarks[p] = five[1];
  landmarks[30] = five[2];
  landmarks[48] = five[3];
  landmarks[54] = five[4];
  return landmarks;
}

TEST(FaceGeometry, OverlapsAreSuppressedBestScoreFirst) {
  const std::vector<FaceBox> kept = suppress_overlaps({{cv::Rect2f(0, 0, 10, 10), 0.6f},
                                                       {cv::Rect2f(1, 1, 10, 10), 0.9f},
                                                       {cv::Rect2f(50, 50, 10, 10), 0.7f},
                                                       {cv::Rect2f(7, 7, 10, 10), 0.8f}},
                                                      0.4f);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.9f);  // (0,0) overlaps it by 0.68 and goes
  EXPECT_FLOAT_EQ(kept[1].score, 0.8f);  // (7,7) overlaps the best by only 0.11
  EXPECT_FLOAT_EQ(kept[2].score, 0.7f);
  EXPECT_FLOAT_EQ(box_overlap(cv::Rect2f(0, 0, 10, 10), cv::Rect2f(5, 0, 10, 10)), 50.0f / 150.0f);
  EXPECT_FLOAT_EQ(box_overlap(cv::Rect2f(), cv::Rect2f()), 0.0f);
}

TEST(FaceGeometry, FivePointsAreEyeCentresNoseTipAndMouthCorners) {
  FaceLandmarks landmarks;
  for (int p = 0; p < 68; ++p) landmarks[p] = cv::Point2f(static_cast<float>(p), static_cast<float>(2 * p));
  const auto five = five_points(landmarks);
  EXPECT_EQ(five[0], cv::Point2f(38.5f, 77.0f));  // mean of 36..41
  EXPECT_EQ(five[1], cv::Point2f(44.5f, 89.0f));  // mean of 42..47
  EXPECT_EQ(five[2], landmarks[30]);
  EXPECT_EQ(five[3], landmarks[48]);
  EXPECT_EQ(five[4], landmarks[54]);
}

TEST(FaceGeometry, SimilarityTransformRecoversRotationScaleAndShift) {
  for (double degrees : {-30.0, -7.5, 0.0, 12.0, 30.0, 170.0}) {
    const cv::Matx23d truth = similarity(degrees, 2.7, {40.0, -13.0});
    std::array<cv::Point2f, 5> moved;
    for (size_t i = 0; i < 5; ++i) moved[i] = apply(truth, alignment_template()[i]);
    const cv::Matx23d found = similarity_transform(alignment_template(), moved);
    for (int r = 0; r < 2; ++r) {
      for (int c = 0; c < 3; ++c) EXPECT_NEAR(found(r, c), truth(r, c), 1e-4) << degrees << " degrees";
    }
  }
  // Noisy points: the least-squares fit, not an exact map; a reflection is never produced.
  std::array<cv::Point2f, 5> mirrored = alignment_template();
  for (auto& p : mirrored) p.x = 112.0f - p.x;
  const cv::Matx23d fit = similarity_transform(alignment_template(), mirrored);
  EXPECT_GE(fit(0, 0) * fit(1, 1) - fit(0, 1) * fit(1, 0), 0.0);
}

// For each of the five points of a face turned by `degrees` and scaled by `scale`: draws a dot
// there alone, aligns the image, and expects the dot's brightness centroid at the template point.
void expect_dots_on_template(double degrees, double scale, int size, float margin) {
  const cv::Matx23d face = similarity(degrees, scale, {300.0, 200.0});
  std::array<cv::Point2f, 5> five;
  for (size_t i = 0; i < 5; ++i) five[i] = apply(face, alignment_template()[i] - cv::Point2f(56, 56));
  const float k = size / 112.0f / (1.0f + margin);
  for (size_t i = 0; i < 5; ++i) {
    cv::Mat image(720, 1280, CV_8UC3, cv::Scalar::all(0));
    // Sub-pixel centre: cv::circle's shift of 4 fractional bits.
    cv::circle(image, cv::Point(cvRound(five[i].x * 16), cvRound(five[i].y * 16)), cvRound(std::max(2.0, scale) * 16),
               cv::Scalar::all(255), cv::FILLED, cv::LINE_AA, 4);
    const cv::Mat crop = aligned_crop(image, landmarks_with(five), size, margin);
    ASSERT_EQ(crop.size(), cv::Size(size, size));
    cv::Mat gray;
    cv::cvtColor(crop, gray, cv::COLOR_BGR2GRAY);
    const cv::Moments m = cv::moments(gray, false);
    ASSERT_GT(m.m00, 0) << "dot " << i << " missing at " << degrees << " degrees, scale " << scale;
    const cv::Point2f found(static_cast<float>(m.m10 / m.m00), static_cast<float>(m.m01 / m.m00));
    const cv::Point2f expected =
        (alignment_template()[i] - cv::Point2f(56, 56)) * k + cv::Point2f(size / 2.0f, size / 2.0f);
    EXPECT_NEAR(found.x, expected.x, 0.5) << "dot " << i << ", " << degrees << " degrees, scale " << scale;
    EXPECT_NEAR(found.y, expected.y, 0.5) << "dot " << i << ", " << degrees << " degrees, scale " << scale;
  }
}

TEST(FaceGeometry, AlignedCropPutsThePointsOnTheTemplate) {
  for (double degrees : {-30.0, -10.0, 0.0, 20.0, 30.0}) {
    expect_dots_on_template(degrees, 4.0, 112, 0.0f);  // a large face: shrunk by area first
    expect_dots_on_template(degrees, 0.9, 112, 0.0f);  // about the crop's own scale
  }
  expect_dots_on_template(15.0, 3.0, 224, 0.25f);  // other size and a margin
}

// Both paths of shrink_by_area against a black canvas and cv::resize(INTER_AREA): 8-bit frames
// (area_shrink, to +-1) and others (cv::resize itself, exactly), the rectangle partly outside.
TEST(FaceGeometry, ShrinkByAreaIsInterAreaOnABlackCanvas) {
  for (const int type : {CV_8UC3, CV_16UC3}) {
    cv::Mat frame(120, 160, type);
    cv::randu(frame, 0, type == CV_8UC3 ? 256 : 65536);
    const cv::Rect rect(-30, 50, 150, 131);
    cv::Mat canvas(rect.size(), type, cv::Scalar::all(0));
    const cv::Rect inside = rect & cv::Rect(0, 0, frame.cols, frame.rows);
    frame(inside).copyTo(canvas(inside - rect.tl()));
    cv::Mat expected;
    cv::resize(canvas, expected, cv::Size(40, 37), 0, 0, cv::INTER_AREA);
    const cv::Mat got = shrink_by_area(frame, rect, cv::Size(40, 37));
    ASSERT_EQ(got.type(), type);
    ASSERT_EQ(got.size(), cv::Size(40, 37));
    cv::Mat difference;
    cv::absdiff(got, expected, difference);
    double worst = 0;
    cv::minMaxLoc(difference.reshape(1), nullptr, &worst);
    EXPECT_LE(worst, type == CV_8UC3 ? 1 : 0);
  }
}

TEST(FaceModels, MissingOrBadDescriptionsSayWhatToDo) {
  testing::ScratchDir dir;
  try {
    load_face_models_config(dir.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kModel);
    EXPECT_NE(std::string(e.what()).find("scripts/make_default_model_set.sh"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--detector haar"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "faces.json") << R"({"format": "abaw-infer-face-models", "version": 1,
    "detector": {"file": "../d.pt", "input_multiple": 32, "default_input_size": 416, "score_threshold": 0.5,
                 "iou_threshold": 0.4},
    "landmarks": {"file": "l.pt", "input_size": 112, "points": 68}})";
  EXPECT_THROW(load_face_models_config(dir.path()), Error);
  std::ofstream(dir / "faces.json") << R"({"format": "abaw-infer-face-models", "version": 1,
    "detector": {"file": "d.pt", "input_multiple": 32, "default_input_size": 400, "score_threshold": 0.5,
                 "iou_threshold": 0.4},
    "landmarks": {"file": "l.pt", "input_size": 112, "points": 68}})";
  EXPECT_THROW(load_face_models_config(dir.path()), Error);  // 400 is not a multiple of 32
}

TEST(FaceModels, OutputsOfTheWrongShapeNameTheFile) {
  testing::ScratchDir dir;
  for (const char* file : {"d.pt", "l.pt"}) {
    torch::jit::Module module("Wrong");
    module.define("def forward(self, x):\n    return x.mean(dim=[2, 3])\n");  // [N, 3]
    module.save((dir / file).string());
  }
  std::ofstream(dir / "faces.json") << R"({"format": "abaw-infer-face-models", "version": 1,
    "detector": {"file": "d.pt", "input_multiple": 32, "default_input_size": 64, "score_threshold": 0.5,
                 "iou_threshold": 0.4},
    "landmarks": {"file": "l.pt", "input_size": 112, "points": 68}})";
  FaceModels models(dir.path(), torch::Device(torch::kCPU), 0, -1.0f);
  const cv::Mat frame(48, 64, CV_8UC3, cv::Scalar::all(90));
  try {
    models.detect({frame});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kModel);
    EXPECT_EQ(e.path(), (dir / "d.pt").string());
    EXPECT_NE(std::string(e.what()).find("face detector output is [1, 3], expected [1, -1, 5]"), std::string::npos)
        << e.what();
  }
  try {
    models.landmarks({frame}, {0}, {cv::Rect2f(4, 4, 30, 30)});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.path(), (dir / "l.pt").string());
    EXPECT_NE(std::string(e.what()).find("landmark net output is [1, 3], expected [1, 68, 2]"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(FaceModels(dir.path(), torch::Device(torch::kCPU), 100, -1.0f), Error);  // not a multiple of 32
  // No descriptor in faces.json: only `--faces N` needs one, and it is told how to get one.
  try {
    models.descriptors({frame}, {0}, {cv::Rect2f(4, 4, 30, 30)});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kModel);
    EXPECT_NE(std::string(e.what()).find("no face descriptor"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "faces.json") << R"({"format": "abaw-infer-face-models", "version": 1,
    "detector": {"file": "d.pt", "input_multiple": 32, "default_input_size": 64, "score_threshold": 0.5,
                 "iou_threshold": 0.4},
    "landmarks": {"file": "l.pt", "input_size": 112, "points": 68},
    "descriptor": {"file": "l.pt", "input_size": 150, "dim": 128}})";
  FaceModels with_descriptor(dir.path(), torch::Device(torch::kCPU), 0, -1.0f);
  try {
    with_descriptor.descriptors({frame}, {0}, {cv::Rect2f(4, 4, 30, 30)});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.path(), (dir / "l.pt").string());
    EXPECT_NE(std::string(e.what()).find("face descriptor output is [1, 3], expected [1, 128]"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace abaw
