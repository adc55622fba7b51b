// Crop decoding and the encoder's preprocessing: JPEG -> resize -> centre crop -> colour order ->
// (pixel * scale - mean) / std, written as float CHW. Semantics in models/README.md.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace abaw {

enum class ResizeMode { kShorterSide, kStretch };
enum class Interpolation { kBicubic, kBilinear, kNearest, kArea };
enum class ColorOrder { kRGB, kBGR, kGray };

// The manifest's `encoder.preprocess` block.
struct PreprocessSpec {
  int resize = 224;
  ResizeMode resize_mode = ResizeMode::kShorterSide;
  Interpolation interpolation = Interpolation::kBicubic;
  int crop = 0;  // 0 = no centre crop
  ColorOrder color_order = ColorOrder::kRGB;
  float scale = 1.0f / 255.0f;
  std::vector<float> mean{0.0f, 0.0f, 0.0f};
  std::vector<float> std{1.0f, 1.0f, 1.0f};

  // 3, or 1 for GRAY.
  int channels() const { return color_order == ColorOrder::kGray ? 1 : 3; }
  // Side of the square tensor the encoder receives (the manifest requires a square output).
  int output_side() const { return crop > 0 ? crop : resize; }
  // Floats per preprocessed image: channels * side * side.
  size_t tensor_size() const {
    return static_cast<size_t>(channels()) * output_side() * output_side();
  }
};

// Names used in the manifest ("bicubic", "RGB", ...), for messages and `info`.
const char* interpolation_name(Interpolation interpolation);
const char* color_order_name(ColorOrder order);
const char* resize_mode_name(ResizeMode mode);

// Decodes an image file to 8-bit BGR (grayscale JPEGs are expanded to 3 channels). Throws
// Error(kInput) naming the file when it is empty, truncated or not an image.
cv::Mat decode_crop(const std::filesystem::path& file);

// Writes spec.tensor_size() floats, CHW, for one decoded BGR image. `source` names the image in
// errors (e.g. a crop smaller than the centre crop).
void preprocess_image(const cv::Mat& bgr, const PreprocessSpec& spec, float* chw,
                      const std::string& source);

// Decodes and preprocesses each file into consecutive spec.tensor_size() blocks of `chw` (room for
// files.size() images). Never throws for a bad file: returns, per file, "" or the message saying
// why it cannot be used, so the caller treats that frame as missing. `run` and `bench` share it.
std::vector<std::string> decode_and_preprocess(const std::vector<std::filesystem::path>& files,
                                               const PreprocessSpec& spec, float* chw);

}  // namespace abaw
