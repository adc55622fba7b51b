// What the encoder's preprocessing is (the manifest's `encoder.preprocess` block), apart from how
// it runs (preprocess.hpp): plain data, so the manifest and the text-only commands need neither
// OpenCV nor LibTorch. Semantics in models/README.md.
#pragma once

#include <cstddef>
#include <vector>

#include "abaw/enum_names.hpp"

namespace abaw {

enum class ResizeMode { kShorterSide, kStretch };
// How the image is resized, and so whose pixels the model sees: OpenCV's cv::resize (bicubic
// a = -0.75, never antialiased), Pillow's Image.resize (what torchvision's Resize does to PIL
// images, CLIP's own transform among them: bicubic a = -0.5, antialiased when shrinking, 8-bit
// fixed point), or torch's F.interpolate on float pixels (tensor pipelines; antialiased only with
// PreprocessSpec::antialias). See resample.hpp for how exactly each is reproduced.
enum class Interpolation {
  kBicubic,  // OpenCV modes
  kBilinear,
  kNearest,
  kArea,
  kPilBicubic,  // Pillow
  kPilBilinear,
  kTorchBicubic,  // torch
  kTorchBilinear,
};

// True for the Pillow and torch modes (resampled by resample.hpp, not by OpenCV).
inline bool is_pil(Interpolation mode) {
  return mode == Interpolation::kPilBicubic || mode == Interpolation::kPilBilinear;
}
inline bool is_torch(Interpolation mode) {
  return mode == Interpolation::kTorchBicubic || mode == Interpolation::kTorchBilinear;
}
enum class ColorOrder { kRGB, kBGR, kGray };

// What decoding does with a JPEG's EXIF orientation tag.
enum class ExifOrientation {
  kIgnore,  // pixels as stored: what Pillow's Image.open (torchvision, CLIP's transform) gives
  kApply,   // rotated / flipped as the tag says: what cv2.imread gives
};

// The names the manifest uses.
inline constexpr EnumName<ResizeMode> kResizeModeNames[] = {{"shorter_side", ResizeMode::kShorterSide},
                                                            {"stretch", ResizeMode::kStretch}};
inline constexpr EnumName<Interpolation> kInterpolationNames[] = {{"bicubic", Interpolation::kBicubic},
                                                                  {"bilinear", Interpolation::kBilinear},
                                                                  {"nearest", Interpolation::kNearest},
                                                                  {"area", Interpolation::kArea},
                                                                  {"pil_bicubic", Interpolation::kPilBicubic},
                                                                  {"pil_bilinear", Interpolation::kPilBilinear},
                                                                  {"torch_bicubic", Interpolation::kTorchBicubic},
                                                                  {"torch_bilinear", Interpolation::kTorchBilinear}};
inline constexpr EnumName<ColorOrder> kColorOrderNames[] = {
    {"RGB", ColorOrder::kRGB}, {"BGR", ColorOrder::kBGR}, {"GRAY", ColorOrder::kGray}};
inline constexpr EnumName<ExifOrientation> kExifOrientationNames[] = {{"ignore", ExifOrientation::kIgnore},
                                                                      {"apply", ExifOrientation::kApply}};

// The manifest's `encoder.preprocess` block.
struct PreprocessSpec {
  int resize = 224;
  ResizeMode resize_mode = ResizeMode::kShorterSide;
  Interpolation interpolation = Interpolation::kBicubic;
  bool antialias = false;  // torch modes only: F.interpolate(..., antialias=True)
  int crop = 0;            // 0 = no centre crop
  ColorOrder color_order = ColorOrder::kRGB;
  float scale = 1.0f / 255.0f;
  std::vector<float> mean{0.0f, 0.0f, 0.0f};
  std::vector<float> std{1.0f, 1.0f, 1.0f};
  ExifOrientation exif = ExifOrientation::kIgnore;

  // 3, or 1 for GRAY.
  int channels() const { return color_order == ColorOrder::kGray ? 1 : 3; }
  // Side of the square tensor the encoder receives (the manifest requires a square output).
  int output_side() const { return crop > 0 ? crop : resize; }
  // Floats per preprocessed image: channels * side * side.
  size_t tensor_size() const { return static_cast<size_t>(channels()) * output_side() * output_side(); }
};

// The largest image decode_crop decodes by default, in pixels (4096 x 4096: 48 MiB as BGR).
// Face crops are far smaller; the limit stops a small file whose header claims 20000 x 20000
// from taking gigabytes in every decode thread. `run --max-image-pixels` raises it.
inline constexpr long long kDefaultMaxImagePixels = 4096LL * 4096;

// Where the last, per-pixel part of the preprocessing (colour order, float conversion,
// normalisation, HWC -> CHW) runs. Decoding, resizing and cropping always run on the host with
// OpenCV, so the pixels match what cv2-based training code saw.
enum class PreprocessPlace {
  kAuto,    // kDevice when the encoder runs on CUDA, else kHost
  kHost,    // decode threads write float CHW tensors
  kDevice,  // decode threads write 8-bit HWC pixels (a quarter of the bytes to copy to the GPU);
            // ModelSet::encode() finishes them with normalise_pixels() on the encoder's device.
            // Not with the torch interpolation modes, whose resized pixels are floats.
};

// The names `--preprocess-on` takes.
inline constexpr EnumName<PreprocessPlace> kPreprocessPlaceNames[] = {
    {"auto", PreprocessPlace::kAuto}, {"host", PreprocessPlace::kHost}, {"device", PreprocessPlace::kDevice}};

}  // namespace abaw
