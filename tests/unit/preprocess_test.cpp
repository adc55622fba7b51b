#include "abaw/preprocess.hpp"
#include "abaw/resample.hpp"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <ATen/ATen.h>

#include <cstring>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

std::string fs_extension(const std::string& name) { return name.substr(name.rfind('.') + 1); }

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

// --preprocess-on device must give the encoder the very floats the host path gives it, so
// the two placements produce byte-identical outputs (checked here on the CPU device).
TEST(Preprocess, PixelsNormalisedOnTheDeviceEqualTheHostPathBitForBit) {
  cv::Mat bgr(37, 29, CV_8UC3);
  cv::randu(bgr, 0, 256);
  for (ColorOrder order : {ColorOrder::kRGB, ColorOrder::kBGR, ColorOrder::kGray}) {
    PreprocessSpec spec;
    spec.resize = 24;
    spec.crop = 20;
    spec.color_order = order;
    spec.mean = order == ColorOrder::kGray ? std::vector<float>{0.45f} : std::vector<float>{0.481f, 0.458f, 0.408f};
    spec.std = order == ColorOrder::kGray ? std::vector<float>{0.27f} : std::vector<float>{0.269f, 0.261f, 0.276f};
    std::vector<float> host(2 * spec.tensor_size());
    preprocess_image(bgr, spec, host.data(), "a");
    preprocess_image(255 - bgr, spec, host.data() + spec.tensor_size(), "b");

    const int side = spec.output_side();
    at::Tensor pixels = at::empty({2, side, side, spec.channels()}, at::kByte);
    const size_t bytes = static_cast<size_t>(side) * side * spec.channels();
    for (int i = 0; i < 2; ++i) {
      const cv::Mat image = resize_and_crop(i == 0 ? bgr : cv::Mat(255 - bgr), spec, "x");
      const size_t row = static_cast<size_t>(side) * spec.channels();  // a crop's rows are not contiguous
      for (int y = 0; y < side; ++y) std::memcpy(pixels.data_ptr<uint8_t>() + i * bytes + y * row, image.ptr(y), row);
    }
    const at::Tensor device = normalise_pixels(pixels, spec, c10::Device(c10::kCPU)).contiguous();
    ASSERT_EQ(device.sizes(), (std::vector<int64_t>{2, spec.channels(), side, side}));
    ASSERT_EQ(device.scalar_type(), at::kFloat);
    EXPECT_EQ(std::memcmp(device.data_ptr<float>(), host.data(), host.size() * sizeof(float)), 0)
        << name_of(kColorOrderNames, order);
  }
}

TEST(Preprocess, PlaceNamesAndAuto) {
  EXPECT_EQ(parse_name(kPreprocessPlaceNames, "device"), PreprocessPlace::kDevice);
  EXPECT_EQ(parse_name(kPreprocessPlaceNames, "gpu"), std::nullopt);
  EXPECT_STREQ(name_of(kPreprocessPlaceNames, PreprocessPlace::kHost), "host");
  EXPECT_EQ(resolve_preprocess_place(PreprocessPlace::kAuto, c10::Device(c10::kCPU), PreprocessSpec{}),
            PreprocessPlace::kHost);
  EXPECT_EQ(resolve_preprocess_place(PreprocessPlace::kAuto, c10::Device(c10::kCUDA, 0), PreprocessSpec{}),
            PreprocessPlace::kDevice);
  EXPECT_EQ(resolve_preprocess_place(PreprocessPlace::kHost, c10::Device(c10::kCUDA, 0), PreprocessSpec{}),
            PreprocessPlace::kHost);
  // The torch modes resize to floats: only the host path carries them.
  PreprocessSpec torch_spec;
  torch_spec.interpolation = Interpolation::kTorchBicubic;
  EXPECT_EQ(resolve_preprocess_place(PreprocessPlace::kAuto, c10::Device(c10::kCUDA, 0), torch_spec),
            PreprocessPlace::kHost);
  EXPECT_THROW(resolve_preprocess_place(PreprocessPlace::kDevice, c10::Device(c10::kCPU), torch_spec), Error);
}

// Pillow and torch modes: the tensor is the resampled pixels (resample.hpp) normalised, with the
// torch modes' floats unrounded; a centre crop of a non-square image keeps torchvision's offsets.
TEST(Preprocess, PillowAndTorchModesNormaliseTheResampledPixels) {
  cv::Mat bgr(37, 50, CV_8UC3);
  cv::randu(bgr, 0, 256);
  ImageU8 image{bgr.cols, bgr.rows, 3, std::vector<uint8_t>(bgr.data, bgr.data + bgr.total() * 3)};
  for (Interpolation mode : {Interpolation::kPilBicubic, Interpolation::kPilBilinear, Interpolation::kTorchBicubic,
                             Interpolation::kTorchBilinear}) {
    for (bool antialias : {false, true}) {
      if (antialias && is_pil(mode)) continue;
      PreprocessSpec spec;
      spec.resize = 20;  // shorter side 37 -> 20: 50 -> 27 wide, then a 20 x 20 centre crop at x = 4 (round(3.5))
      spec.crop = 20;
      spec.interpolation = mode;
      spec.antialias = antialias;
      spec.mean = {0.1f, 0.2f, 0.3f};
      spec.std = {0.5f, 0.25f, 2.0f};
      std::vector<float> chw(spec.tensor_size());
      preprocess_image(bgr, spec, chw.data(), "test");
      const ResampleFilter filter = mode == Interpolation::kPilBicubic || mode == Interpolation::kTorchBicubic
                                        ? ResampleFilter::kBicubic
                                        : ResampleFilter::kBilinear;
      std::vector<float> resized;  // 27 x 20 x 3, BGR
      if (is_pil(mode)) {
        const ImageU8 out = pil_resize(image, 27, 20, filter);
        resized.assign(out.pixels.begin(), out.pixels.end());
      } else {
        resized = torch_resize(image, 27, 20, filter, antialias);
      }
      for (int c = 0; c < 3; ++c) {
        for (int y = 0; y < 20; ++y) {
          for (int x = 0; x < 20; ++x) {
            const float pixel = resized[(y * 27 + x + 4) * 3 + (2 - c)];  // RGB from BGR
            const float want = (pixel * spec.scale - spec.mean[c]) * (1.0f / spec.std[c]);
            ASSERT_EQ(chw[(c * 20 + y) * 20 + x], want) << name_of(kInterpolationNames, mode) << " c" << c;
          }
        }
      }
    }
  }
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

// decode_crop decodes JPEGs itself (to see libjpeg's warnings); its pixels must stay OpenCV's,
// which the Python reference and training code read.
TEST(Decode, PixelsAreExactlyOpenCVs) {
  testing::ScratchDir dir;
  cv::RNG rng(7);
  cv::Mat noise(53, 37, CV_8UC3), gray(40, 40, CV_8UC1);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
  rng.fill(gray, cv::RNG::UNIFORM, 0, 256);
  cv::Mat smooth;
  cv::GaussianBlur(noise, smooth, cv::Size(5, 5), 2.0);
  struct Case {
    const char* name;
    cv::Mat image;
    std::vector<int> params;
  };
  const std::vector<Case> cases = {
      {"q95.jpg", smooth, {cv::IMWRITE_JPEG_QUALITY, 95}},
      {"q30.jpg", noise, {cv::IMWRITE_JPEG_QUALITY, 30}},
      {"gray.jpg", gray, {}},
      {"progressive.jpg", smooth, {cv::IMWRITE_JPEG_PROGRESSIVE, 1}},
      {"optimized.jpg", smooth, {cv::IMWRITE_JPEG_OPTIMIZE, 1}},
      {"restarts.jpg", noise, {cv::IMWRITE_JPEG_RST_INTERVAL, 2}},
      {"png.png", noise, {}},
  };
  for (const auto& c : cases) {
    std::vector<uchar> bytes;
    ASSERT_TRUE(cv::imencode(std::string(".") + fs_extension(c.name), c.image, bytes, c.params)) << c.name;
    testing::write_text(dir / c.name, std::string(bytes.begin(), bytes.end()));
    const cv::Mat ours = decode_crop(dir / c.name);
    const cv::Mat theirs = cv::imdecode(bytes, cv::IMREAD_COLOR);
    ASSERT_EQ(ours.size(), theirs.size()) << c.name;
    ASSERT_EQ(ours.type(), theirs.type()) << c.name;
    EXPECT_EQ(cv::norm(ours, theirs, cv::NORM_INF), 0.0) << c.name;
  }
  // EXIF orientation 6 (rotate 90 degrees): applied as OpenCV's default does, or ignored as
  // Pillow does (the manifest's default).
  std::vector<uchar> bytes;
  ASSERT_TRUE(cv::imencode(".jpg", smooth, bytes));
  const unsigned char app1[] = {0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 0x2A, 0, 8, 0, 0, 0,
                                1,    0,    0x12, 0x01, 3,   0,   1,   0,   0, 0, 6,   0,   0,    0, 0, 0, 0, 0};
  bytes.insert(bytes.begin() + 2, std::begin(app1), std::end(app1));
  testing::write_text(dir / "exif.jpg", std::string(bytes.begin(), bytes.end()));
  const cv::Mat theirs = cv::imdecode(bytes, cv::IMREAD_COLOR);
  ASSERT_EQ(theirs.size(), cv::Size(53, 37)) << "OpenCV did not rotate: the EXIF segment is malformed";
  EXPECT_EQ(
      cv::norm(decode_crop(dir / "exif.jpg", kDefaultMaxImagePixels, ExifOrientation::kApply), theirs, cv::NORM_INF),
      0.0);
  const cv::Mat as_stored = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  ASSERT_EQ(as_stored.size(), cv::Size(37, 53));
  EXPECT_EQ(cv::norm(decode_crop(dir / "exif.jpg"), as_stored, cv::NORM_INF), 0.0);
}

// Issue 21: damage that keeps the end-of-image marker used to decode to half-grey frames.
TEST(Decode, CorruptJpegDataIsAnErrorNamingTheFile) {
  testing::ScratchDir dir;
  cv::Mat image(64, 64, CV_8UC3);
  cv::RNG(3).fill(image, cv::RNG::UNIFORM, 0, 256);
  std::vector<uchar> bytes;
  ASSERT_TRUE(cv::imencode(".jpg", image, bytes));
  const std::string jpeg(bytes.begin(), bytes.end());
  const size_t half = jpeg.size() / 2;
  testing::write_text(dir / "zeroed.jpg",
                      jpeg.substr(0, half) + std::string(jpeg.size() - half - 2, '\0') + "\xFF\xD9");
  testing::write_text(dir / "cut.jpg", jpeg.substr(0, half) + "\xFF\xD9");
  for (const char* name : {"zeroed.jpg", "cut.jpg"}) {
    ASSERT_FALSE(cv::imdecode(std::vector<uchar>(jpeg.begin(), jpeg.end()), cv::IMREAD_COLOR).empty());
    try {
      decode_crop(dir / name);
      FAIL() << name << " decoded";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInput);
      EXPECT_EQ(e.path(), (dir / name).string());
      EXPECT_NE(std::string(e.what()).find("corrupt JPEG data"), std::string::npos) << e.what();
    }
  }
}

TEST(Decode, ImagesOverThePixelLimitAreRefusedFromTheHeader) {
  testing::ScratchDir dir;
  cv::Mat image(64, 64, CV_8UC3, cv::Scalar(9, 9, 9));
  std::vector<uchar> bytes;
  ASSERT_TRUE(cv::imencode(".jpg", image, bytes));
  // A 20000 x 20000 claim in the frame header (SOF0: FF C0, length, precision, height, width).
  for (size_t i = 0; i + 8 < bytes.size(); ++i) {
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xC0) {
      bytes[i + 5] = 20000 >> 8, bytes[i + 6] = 20000 & 0xFF, bytes[i + 7] = 20000 >> 8, bytes[i + 8] = 20000 & 0xFF;
      break;
    }
  }
  testing::write_text(dir / "huge.jpg", std::string(bytes.begin(), bytes.end()));
  ASSERT_TRUE(cv::imwrite((dir / "small.png").string(), image));
  ASSERT_TRUE(cv::imwrite((dir / "small.jpg").string(), image));
  const std::vector<std::pair<const char*, long long>> cases = {
      {"huge.jpg", kDefaultMaxImagePixels}, {"small.jpg", 64 * 64 - 1}, {"small.png", 64 * 64 - 1}};
  for (const auto& [name, limit] : cases) {
    try {
      decode_crop(dir / name, limit);
      FAIL() << name << " decoded";
    } catch (const Error& e) {
      EXPECT_EQ(e.path(), (dir / name).string());
      EXPECT_NE(std::string(e.what()).find("over the limit of " + std::to_string(limit) + " pixels"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(decode_crop(dir / "small.jpg", 64 * 64).size(), cv::Size(64, 64));
  EXPECT_EQ(decode_crop(dir / "small.png", 64 * 64).size(), cv::Size(64, 64));
}

}  // namespace
}  // namespace abaw
