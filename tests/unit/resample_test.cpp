#include "abaw/resample.hpp"

#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

// Properties that need no Python. Bit-exactness against Pillow and torch themselves:
// tests/e2e/test_resample.py.

namespace abaw {
namespace {

constexpr ResampleFilter kFilters[] = {ResampleFilter::kBilinear, ResampleFilter::kBicubic};

ImageU8 random_image(int width, int height, int channels, unsigned seed) {
  ImageU8 image{width, height, channels, {}};
  image.pixels.resize(static_cast<size_t>(width) * height * channels);
  std::mt19937 rng(seed);
  for (auto& p : image.pixels) p = static_cast<uint8_t>(rng() & 255);
  return image;
}

ImageU8 constant_image(int width, int height, int channels, uint8_t value) {
  return ImageU8{width, height, channels, std::vector<uint8_t>(static_cast<size_t>(width) * height * channels, value)};
}

ImageU8 row_image(std::vector<uint8_t> values) {
  const int width = static_cast<int>(values.size());
  return ImageU8{width, 1, 1, std::move(values)};
}

TEST(Resample, SameSizeReturnsTheInput) {
  for (int channels = 1; channels <= 4; ++channels) {
    const ImageU8 image = random_image(13, 7, channels, 1 + channels);
    for (ResampleFilter filter : kFilters) {
      const ImageU8 pil = pil_resize(image, 13, 7, filter);
      EXPECT_EQ(pil.width, 13);
      EXPECT_EQ(pil.height, 7);
      EXPECT_EQ(pil.channels, channels);
      EXPECT_EQ(pil.pixels, image.pixels);
      for (bool antialias : {false, true}) {
        const std::vector<float> out = torch_resize(image, 13, 7, filter, antialias);
        ASSERT_EQ(out.size(), image.pixels.size());
        for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], image.pixels[i]) << i;
      }
    }
  }
}

TEST(Resample, ConstantImagesStayConstant) {
  // Weights are normalised per output pixel: Pillow's fixed-point sums round back to the value
  // exactly, torch's float sums to within float rounding.
  const int sizes[][4] = {{5, 4, 11, 9}, {11, 9, 5, 4}, {16, 16, 3, 7}, {7, 3, 7, 12}, {9, 6, 2, 6}, {1, 1, 6, 4}};
  for (int channels = 1; channels <= 4; ++channels) {
    for (const uint8_t value : {0, 1, 128, 254, 255}) {
      for (const auto& s : sizes) {
        const ImageU8 image = constant_image(s[0], s[1], channels, value);
        for (ResampleFilter filter : kFilters) {
          const ImageU8 pil = pil_resize(image, s[2], s[3], filter);
          for (uint8_t p : pil.pixels) ASSERT_EQ(p, value) << s[0] << "x" << s[1] << " -> " << s[2] << "x" << s[3];
          for (bool antialias : {false, true}) {
            for (float v : torch_resize(image, s[2], s[3], filter, antialias)) {
              ASSERT_NEAR(v, value, 1e-3) << s[0] << "x" << s[1] << " -> " << s[2] << "x" << s[3];
            }
          }
        }
      }
    }
  }
}

TEST(Resample, OutputSizes) {
  const ImageU8 image = random_image(17, 10, 3, 7);
  for (ResampleFilter filter : kFilters) {
    const ImageU8 pil = pil_resize(image, 31, 4, filter);
    EXPECT_EQ(pil.width, 31);
    EXPECT_EQ(pil.height, 4);
    EXPECT_EQ(pil.channels, 3);
    EXPECT_EQ(pil.pixels.size(), 31u * 4u * 3u);
    EXPECT_EQ(pil_resize(image, 1, 1, filter).pixels.size(), 3u);
    for (bool antialias : {false, true}) {
      EXPECT_EQ(torch_resize(image, 31, 4, filter, antialias).size(), 31u * 4u * 3u);
      EXPECT_EQ(torch_resize(image, 1, 1, filter, antialias).size(), 3u);
    }
  }
}

TEST(Resample, OnePixelWideInputsAreConstantAcrossTheWidth) {
  // One source column: every output column is the same (vertically resampled) column; exactly for
  // Pillow (a single tap of weight 1), to float rounding for torch (whose taps repeat the pixel
  // with weights summing to 1).
  const ImageU8 column = random_image(1, 6, 3, 11);
  for (ResampleFilter filter : kFilters) {
    const ImageU8 pil = pil_resize(column, 5, 9, filter);
    const ImageU8 pil_column = pil_resize(column, 1, 9, filter);
    for (int y = 0; y < 9; ++y) {
      for (int x = 0; x < 5; ++x) {
        for (int c = 0; c < 3; ++c) ASSERT_EQ(pil.pixels[(y * 5 + x) * 3 + c], pil_column.pixels[y * 3 + c]);
      }
    }
    for (bool antialias : {false, true}) {
      const std::vector<float> out = torch_resize(column, 5, 9, filter, antialias);
      const std::vector<float> out_column = torch_resize(column, 1, 9, filter, antialias);
      for (int y = 0; y < 9; ++y) {
        for (int x = 0; x < 5; ++x) {
          for (int c = 0; c < 3; ++c) ASSERT_NEAR(out[(y * 5 + x) * 3 + c], out_column[y * 3 + c], 1e-3);
        }
      }
    }
  }
  // A single pixel is the whole image.
  const ImageU8 pixel{1, 1, 3, {10, 200, 77}};
  for (ResampleFilter filter : kFilters) {
    const ImageU8 pil = pil_resize(pixel, 7, 5, filter);
    for (size_t i = 0; i < pil.pixels.size(); ++i) ASSERT_EQ(pil.pixels[i], pixel.pixels[i % 3]);
    for (bool antialias : {false, true}) {
      const std::vector<float> out = torch_resize(pixel, 7, 5, filter, antialias);
      for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], pixel.pixels[i % 3], 1e-3);
    }
  }
}

TEST(Resample, PillowHandComputed) {
  // [0, 255] -> 4 wide, bilinear: centres 0.25, 0.75, 1.25, 1.75 in source pixels; the outer two
  // see one source pixel, the inner two weigh them 3:1, and 0.25 * 255 = 63.75 rounds to 64 in
  // 22-bit fixed point (0.75 * 255 = 191.25 to 191).
  const ImageU8 up = pil_resize(row_image({0, 255}), 4, 1, ResampleFilter::kBilinear);
  EXPECT_EQ(up.pixels, (std::vector<uint8_t>{0, 64, 191, 255}));
  // Shrinking by 2 widens the triangle to +-2 source pixels (antialiasing): output 0 (centre 1)
  // weighs pixels 0, 1, 2 by 0.75, 0.75, 0.25, so 255 / 7 = 36.4 -> 36.
  const ImageU8 down = pil_resize(row_image({0, 0, 255, 255}), 2, 1, ResampleFilter::kBilinear);
  EXPECT_EQ(down.pixels, (std::vector<uint8_t>{36, 219}));
  // Bicubic (a = -0.5) overshoots and is clipped to 0..255.
  EXPECT_EQ(pil_resize(row_image({0, 255}), 4, 1, ResampleFilter::kBicubic).pixels,
            (std::vector<uint8_t>{0, 53, 202, 255}));
  EXPECT_EQ(pil_resize(row_image({0, 0, 255, 255}), 2, 1, ResampleFilter::kBicubic).pixels,
            (std::vector<uint8_t>{21, 234}));
}

TEST(Resample, TorchHandComputed) {
  // Source coordinates (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25.
  const ImageU8 edge = row_image({0, 255});
  // Bilinear clamps -0.25 to 0 and the last pixel's neighbour to itself.
  EXPECT_EQ(torch_resize(edge, 4, 1, ResampleFilter::kBilinear, false),
            (std::vector<float>{0.0f, 63.75f, 191.25f, 255.0f}));
  // Bicubic, a = -0.75, t = 0.25: coefficients -0.10546875, 0.87890625, 0.26171875, -0.03515625,
  // taps clamped to the border, so 255 * (0.26171875 - 0.03515625) = 57.7734375; at -0.25
  // (t = 0.75) only the last coefficient meets 255: -26.89453125. Nothing is clipped.
  EXPECT_EQ(torch_resize(edge, 4, 1, ResampleFilter::kBicubic, false),
            (std::vector<float>{-26.89453125f, 57.7734375f, 197.2265625f, 281.89453125f}));
  // Shrinking without antialias reads 2 (or 4) pixels around each coordinate (0.5, 2.5) and skips
  // the rest; with it, the widened filter averages like Pillow (36.43 = 255 / 7), unrounded.
  const ImageU8 step = row_image({0, 0, 255, 255});
  EXPECT_EQ(torch_resize(step, 2, 1, ResampleFilter::kBilinear, false), (std::vector<float>{0.0f, 255.0f}));
  EXPECT_EQ(torch_resize(step, 2, 1, ResampleFilter::kBicubic, false), (std::vector<float>{-23.90625f, 278.90625f}));
  const std::vector<float> aa = torch_resize(step, 2, 1, ResampleFilter::kBilinear, true);
  ASSERT_EQ(aa.size(), 2u);
  EXPECT_NEAR(aa[0], 255.0 / 7, 1e-4);
  EXPECT_NEAR(aa[1], 255.0 * 6 / 7, 1e-4);
}

TEST(Resample, ChannelsAreIndependent) {
  // Each channel of an interleaved image resizes as that channel alone would.
  const ImageU8 image = random_image(9, 7, 4, 3);
  for (ResampleFilter filter : kFilters) {
    const ImageU8 all = pil_resize(image, 14, 5, filter);
    const std::vector<float> all_torch = torch_resize(image, 14, 5, filter, true);
    for (int c = 0; c < 4; ++c) {
      ImageU8 plane{9, 7, 1, {}};
      for (size_t i = c; i < image.pixels.size(); i += 4) plane.pixels.push_back(image.pixels[i]);
      const ImageU8 one = pil_resize(plane, 14, 5, filter);
      const std::vector<float> one_torch = torch_resize(plane, 14, 5, filter, true);
      for (size_t i = 0; i < one.pixels.size(); ++i) {
        ASSERT_EQ(all.pixels[i * 4 + c], one.pixels[i]);
        ASSERT_EQ(all_torch[i * 4 + c], one_torch[i]);
      }
    }
  }
}

TEST(Resample, RejectsInvalidArguments) {
  const ImageU8 image = random_image(4, 3, 3, 5);
  EXPECT_THROW(pil_resize(image, 0, 3, ResampleFilter::kBicubic), std::invalid_argument);
  EXPECT_THROW(pil_resize(image, 3, -1, ResampleFilter::kBicubic), std::invalid_argument);
  EXPECT_THROW(torch_resize(image, 0, 0, ResampleFilter::kBilinear, false), std::invalid_argument);
  ImageU8 bad = image;
  bad.pixels.pop_back();
  EXPECT_THROW(pil_resize(bad, 8, 6, ResampleFilter::kBilinear), std::invalid_argument);
  bad = image;
  bad.channels = 5;
  EXPECT_THROW(torch_resize(bad, 8, 6, ResampleFilter::kBicubic, true), std::invalid_argument);
  EXPECT_THROW(pil_resize(ImageU8{}, 2, 2, ResampleFilter::kBilinear), std::invalid_argument);
}

// area_shrink against what it replaces: cut into a zeroed canvas, cv::resize(INTER_AREA). Sizes
// around the shrink ratios of face crops (whole and fractional), squares and other rectangles
// (one axis kept), inside, across and outside the image's edges, 1 and 3 channels, an image that
// is a view into a larger one.
TEST(Resample, AreaShrinkIsOpenCVsInterAreaToOne) {
  std::mt19937 rng(17);
  size_t values = 0, differing = 0;
  for (int round = 0; round < 80; ++round) {
    const int channels = round % 3 == 0 ? 1 : 3;
    const cv::Mat whole(240 + static_cast<int>(rng() % 200), 260 + static_cast<int>(rng() % 200), CV_8UC(channels));
    cv::randu(whole, 0, 256);
    const cv::Mat image = whole(cv::Rect(3, 5, whole.cols - 9, whole.rows - 7));  // row_bytes > width
    const int out_width = round % 4 == 0 ? 112 : 16 + static_cast<int>(rng() % 100);
    const int out_height = round % 2 == 0 ? out_width : 16 + static_cast<int>(rng() % 100);
    const int width = out_width + (round % 5 == 1 ? 0 : 1 + static_cast<int>(rng() % 400));
    const int height = round % 2 == 0 && round % 5 != 1 ? width : out_height + static_cast<int>(rng() % 400);
    const int left = static_cast<int>(rng() % (image.cols + width)) - width / 2 - width / 4;
    const int top = static_cast<int>(rng() % (image.rows + height)) - height / 2 - height / 4;
    const cv::Rect rectangle(left, top, width, height);
    const cv::Rect inside = rectangle & cv::Rect(0, 0, image.cols, image.rows);
    cv::Mat canvas(height, width, image.type(), cv::Scalar::all(0));
    if (inside.area() > 0) image(inside).copyTo(canvas(inside - rectangle.tl()));
    cv::Mat expected;
    cv::resize(canvas, expected, cv::Size(out_width, out_height), 0, 0, cv::INTER_AREA);
    cv::Mat got(out_height, out_width, image.type());
    area_shrink({image.data, image.cols, image.rows, channels, image.step}, left, top, width, height, out_width,
                out_height, got.data);
    cv::Mat difference;
    cv::absdiff(got, expected, difference);
    double worst = 0;
    cv::minMaxLoc(difference.reshape(1), nullptr, &worst);
    ASSERT_LE(worst, 1) << width << " x " << height << " to " << out_width << " x " << out_height << " at " << left
                        << "," << top;
    values += difference.total() * channels;
    differing += static_cast<size_t>(cv::countNonZero(difference.reshape(1)));
  }
  EXPECT_LT(static_cast<double>(differing) / values, 0.01) << differing << " of " << values << " values differ by 1";
}

TEST(Resample, AreaShrinkRejectsInvalidArguments) {
  const std::vector<uint8_t> pixels(12 * 10 * 3);
  std::vector<uint8_t> out(8 * 8 * 3);
  const ImageU8View view{pixels.data(), 12, 10, 3, 36};
  EXPECT_THROW(area_shrink(view, 0, 0, 8, 8, 9, 8, out.data()), std::invalid_argument);  // not a shrink
  EXPECT_THROW(area_shrink(view, 0, 0, 16, 16, 0, 8, out.data()), std::invalid_argument);
  EXPECT_THROW(area_shrink({pixels.data(), 12, 10, 3, 35}, 0, 0, 16, 16, 8, 8, out.data()), std::invalid_argument);
  EXPECT_THROW(area_shrink({nullptr, 12, 10, 3, 36}, 0, 0, 16, 16, 8, 8, out.data()), std::invalid_argument);
  std::fill(out.begin(), out.end(), 7);
  EXPECT_NO_THROW(area_shrink(view, -100, -100, 16, 16, 8, 8, out.data()));  // all outside: black
  EXPECT_EQ(std::count(out.begin(), out.end(), 0), static_cast<long>(out.size()));
}

}  // namespace
}  // namespace abaw
