#include "abaw/preprocess.hpp"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

TEST(Preprocess, ChannelOrderScaleMeanAndStd) {
  cv::Mat bgr(2, 2, CV_8UC3, cv::Scalar(10, 20, 30));  // B, G, R
  PreprocessSpec spec;
  spec.resize = 2;
  spec.crop = 2;
  spec.scale = 1.0f;
  spec.mean = {1, 2, 3};
  spec.std = {2, 2, 2};
  std::vector<float> out(spec.tensor_size());
  preprocess_image(bgr, spec, out.data(), "test");
  EXPECT_FLOAT_EQ(out[0], (30 - 1) / 2.0f);  // R plane first
  EXPECT_FLOAT_EQ(out[4], (20 - 2) / 2.0f);
  EXPECT_FLOAT_EQ(out[8], (10 - 3) / 2.0f);
  spec.color_order = ColorOrder::kBGR;
  preprocess_image(bgr, spec, out.data(), "test");
  EXPECT_FLOAT_EQ(out[0], (10 - 1) / 2.0f);
}

TEST(Preprocess, ResizeThenCentreCropMatchesOpenCv) {
  cv::Mat bgr(9, 12, CV_8UC3);
  cv::randu(bgr, 0, 255);
  PreprocessSpec spec;
  spec.resize = 6;  // shorter side 9 -> 6, longer 12 -> floor(6 * 12 / 9) = 8
  spec.crop = 5;
  spec.interpolation = Interpolation::kBilinear;
  spec.color_order = ColorOrder::kBGR;
  spec.scale = 1.0f;
  std::vector<float> out(spec.tensor_size());
  preprocess_image(bgr, spec, out.data(), "test");
  cv::Mat expected;
  cv::resize(bgr, expected, cv::Size(8, 6), 0, 0, cv::INTER_LINEAR);
  // top = round(0.5) = 0 (half to even), left = round(1.5) = 2.
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 5; ++x) EXPECT_EQ(out[y * 5 + x], expected.at<cv::Vec3b>(y, x + 2)[0]) << y << "," << x;
  }
}

TEST(Preprocess, GrayUsesOneChannel) {
  cv::Mat bgr(4, 4, CV_8UC3, cv::Scalar(0, 0, 255));
  PreprocessSpec spec;
  spec.resize = 4;
  spec.resize_mode = ResizeMode::kStretch;
  spec.color_order = ColorOrder::kGray;
  spec.scale = 1.0f;
  spec.mean = {0};
  spec.std = {1};
  ASSERT_EQ(spec.tensor_size(), 16u);
  std::vector<float> out(16);
  preprocess_image(bgr, spec, out.data(), "test");
  EXPECT_NEAR(out[0], 76, 1);  // 0.299 * 255
}

TEST(Preprocess, NonSquareWithoutCropIsAnError) {
  cv::Mat bgr(4, 8, CV_8UC3, cv::Scalar(0, 0, 0));
  PreprocessSpec spec;
  spec.resize = 4;
  EXPECT_THROW(preprocess_image(bgr, spec, std::vector<float>(48).data(), "x.jpg"), Error);
}

TEST(Decode, RejectsEmptyTruncatedAndNonImageFiles) {
  testing::ScratchDir dir;
  cv::Mat image(16, 16, CV_8UC3, cv::Scalar(1, 2, 3));
  ASSERT_TRUE(cv::imwrite((dir / "good.jpg").string(), image));
  EXPECT_EQ(decode_crop(dir / "good.jpg").size(), cv::Size(16, 16));
  const std::string jpeg = testing::read_text(dir / "good.jpg");
  testing::write_text(dir / "empty.jpg", "");
  testing::write_text(dir / "truncated.jpg", jpeg.substr(0, jpeg.size() / 2));
  testing::write_text(dir / "text.jpg", "not an image at all");
  for (const char* name : {"empty.jpg", "truncated.jpg", "text.jpg", "absent.jpg"}) {
    try {
      decode_crop(dir / name);
      FAIL() << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInput);
      EXPECT_EQ(e.path(), (dir / name).string());
    }
  }
  cv::Mat gray(8, 8, CV_8UC1, cv::Scalar(100));
  ASSERT_TRUE(cv::imwrite((dir / "gray.jpg").string(), gray));
  EXPECT_EQ(decode_crop(dir / "gray.jpg").channels(), 3);
}

}  // namespace
}  // namespace abaw
