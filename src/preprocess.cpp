#include "abaw/preprocess.hpp"

#include <cmath>
#include <fstream>
#include <iterator>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "abaw/error.hpp"

namespace fs = std::filesystem;

namespace abaw {

const char* interpolation_name(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::kBicubic: return "bicubic";
    case Interpolation::kBilinear: return "bilinear";
    case Interpolation::kNearest: return "nearest";
    case Interpolation::kArea: return "area";
  }
  return "?";
}

const char* color_order_name(ColorOrder order) {
  switch (order) {
    case ColorOrder::kRGB: return "RGB";
    case ColorOrder::kBGR: return "BGR";
    case ColorOrder::kGray: return "GRAY";
  }
  return "?";
}

const char* resize_mode_name(ResizeMode mode) {
  return mode == ResizeMode::kShorterSide ? "shorter_side" : "stretch";
}

cv::Mat decode_crop(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorKind::kInput, "cannot open crop", file.string());
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) throw Error(ErrorKind::kInput, "crop file is empty (0 bytes)", file.string());
  // libjpeg "recovers" from a truncated file by filling grey; a JPEG must end with the EOI
  // marker FF D9, so a missing one is a truncated download or a crash mid-write.
  const bool is_jpeg = bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
  if (is_jpeg) {
    size_t end = bytes.size();
    while (end > 2 && bytes[end - 1] != 0xD9) --end;  // tolerate padding after EOI
    if (end < 2 || bytes[end - 2] != 0xFF) {
      throw Error(ErrorKind::kInput, "truncated JPEG (no end-of-image marker)", file.string());
    }
  }
  cv::Mat image = cv::imdecode(bytes, cv::IMREAD_COLOR);
  if (image.empty()) throw Error(ErrorKind::kInput, "not a decodable image", file.string());
  return image;
}

void preprocess_image(const cv::Mat& bgr, const PreprocessSpec& spec, float* chw,
                      const std::string& source) {
  int interpolation = cv::INTER_CUBIC;
  switch (spec.interpolation) {
    case Interpolation::kBicubic: interpolation = cv::INTER_CUBIC; break;
    case Interpolation::kBilinear: interpolation = cv::INTER_LINEAR; break;
    case Interpolation::kNearest: interpolation = cv::INTER_NEAREST; break;
    case Interpolation::kArea: interpolation = cv::INTER_AREA; break;
  }
  int width = spec.resize, height = spec.resize;
  if (spec.resize_mode == ResizeMode::kShorterSide) {
    // torchvision Resize(int): the longer side is truncated, not rounded.
    if (bgr.cols <= bgr.rows) {
      height = static_cast<int>(static_cast<long long>(spec.resize) * bgr.rows / bgr.cols);
    } else {
      width = static_cast<int>(static_cast<long long>(spec.resize) * bgr.cols / bgr.rows);
    }
  }
  cv::Mat resized = bgr;
  if (bgr.cols != width || bgr.rows != height) {
    cv::resize(bgr, resized, cv::Size(width, height), 0, 0, interpolation);
  }
  const int side = spec.output_side();
  cv::Mat view = resized;
  if (spec.crop > 0) {
    if (spec.crop > width || spec.crop > height) {
      throw Error(ErrorKind::kInput,
                  "image of " + std::to_string(bgr.cols) + "x" + std::to_string(bgr.rows) + " resizes to " +
                      std::to_string(width) + "x" + std::to_string(height) + ", smaller than the centre crop " +
                      std::to_string(spec.crop),
                  source);
    }
    // torchvision CenterCrop: round((size - crop) / 2) with Python's round-half-to-even.
    const int top = static_cast<int>(std::nearbyint((height - spec.crop) / 2.0));
    const int left = static_cast<int>(std::nearbyint((width - spec.crop) / 2.0));
    view = resized(cv::Rect(left, top, spec.crop, spec.crop));
  }
  if (view.cols != side || view.rows != side) {
    throw Error(ErrorKind::kInput,
                "preprocessed image is " + std::to_string(view.cols) + "x" + std::to_string(view.rows) +
                    ", the encoder needs " + std::to_string(side) + "x" + std::to_string(side) +
                    " (non-square crop with resize_mode shorter_side and no centre crop)",
                source);
  }
  const size_t plane = static_cast<size_t>(side) * side;
  if (spec.color_order == ColorOrder::kGray) {
    cv::Mat gray;
    cv::cvtColor(view, gray, cv::COLOR_BGR2GRAY);
    const float mean = spec.mean[0], inv_std = 1.0f / spec.std[0];
    for (int y = 0; y < side; ++y) {
      const uint8_t* row = gray.ptr<uint8_t>(y);
      for (int x = 0; x < side; ++x) chw[y * side + x] = (row[x] * spec.scale - mean) * inv_std;
    }
    return;
  }
  // BGR source channel feeding each output channel.
  const int source_channel[3] = {spec.color_order == ColorOrder::kRGB ? 2 : 0, 1,
                                 spec.color_order == ColorOrder::kRGB ? 0 : 2};
  for (int c = 0; c < 3; ++c) {
    const float mean = spec.mean[c], inv_std = 1.0f / spec.std[c];
    float* out = chw + c * plane;
    const int sc = source_channel[c];
    for (int y = 0; y < side; ++y) {
      const uint8_t* row = view.ptr<uint8_t>(y);
      for (int x = 0; x < side; ++x) out[y * side + x] = (row[x * 3 + sc] * spec.scale - mean) * inv_std;
    }
  }
}

std::vector<std::string> decode_and_preprocess(const std::vector<fs::path>& files, const PreprocessSpec& spec,
                                               float* chw) {
  std::vector<std::string> errors(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    try {
      preprocess_image(decode_crop(files[i]), spec, chw + i * spec.tensor_size(), files[i].string());
    } catch (const Error& e) {
      errors[i] = e.what();
    } catch (const cv::Exception& e) {
      errors[i] = files[i].string() + ": OpenCV: " + e.what();
    }
  }
  return errors;
}

}  // namespace abaw
