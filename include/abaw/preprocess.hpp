// Crop decoding and the encoder's preprocessing: JPEG -> resize -> centre crop -> colour order ->
// (pixel * scale - mean) / std, written as float CHW. Semantics in models/README.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <opencv2/core.hpp>

namespace abaw {

enum class ResizeMode { kShorterSide, kStretch };
enum class Interpolation { kBicubic, kBilinear, kNearest, kArea };
enum class ColorOrder { kRGB, kBGR, kGray };

// The manifest's `encoder.preprocess` block.
// What decoding does with a JPEG's EXIF orientation tag.
enum class ExifOrientation {
  kIgnore,  // pixels as stored: what Pillow's Image.open (torchvision, CLIP's transform) gives
  kApply,   // rotated / flipped as the tag says: what cv2.imread gives
};

struct PreprocessSpec {
  int resize = 224;
  ResizeMode resize_mode = ResizeMode::kShorterSide;
  Interpolation interpolation = Interpolation::kBicubic;
  int crop = 0;  // 0 = no centre crop
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

// Names used in the manifest ("bicubic", "RGB", ...), for messages and `info`.
const char* interpolation_name(Interpolation interpolation);
const char* color_order_name(ColorOrder order);
const char* resize_mode_name(ResizeMode mode);
const char* exif_orientation_name(ExifOrientation exif);

// The largest image decode_crop decodes by default, in pixels (4096 x 4096: 48 MiB as BGR).
// Face crops are far smaller; the limit stops a small file whose header claims 20000 x 20000
// from taking gigabytes in every decode thread. `run --max-image-pixels` raises it.
inline constexpr long long kDefaultMaxImagePixels = 4096LL * 4096;

// Decodes an image file to 8-bit BGR (grayscale JPEGs are expanded to 3 channels), pixel for
// pixel as cv::imdecode (with IMREAD_IGNORE_ORIENTATION unless `exif` is kApply). Throws Error(kInput) naming the file when it is empty, truncated, not
// an image, larger than `max_pixels` by its header, or a JPEG with corrupt data (any libjpeg
// warning: such files decode to partly grey or garbled pixels).
// `exif` says whether an EXIF orientation tag rotates the pixels.
cv::Mat decode_crop(const std::filesystem::path& file, long long max_pixels = kDefaultMaxImagePixels,
                    ExifOrientation exif = ExifOrientation::kIgnore);

// Where the last, per-pixel part of the preprocessing (colour order, float conversion,
// normalisation, HWC -> CHW) runs. Decoding, resizing and cropping always run on the host with
// OpenCV, so the pixels match what cv2-based training code saw.
enum class PreprocessPlace {
  kAuto,    // kDevice when the encoder runs on CUDA, else kHost
  kHost,    // decode threads write float CHW tensors
  kDevice,  // decode threads write 8-bit HWC pixels (a quarter of the bytes to copy to the GPU);
            // ModelSet::encode() finishes them with normalise_pixels() on the encoder's device
};

// "auto", "host", "device"; parse returns nullopt for anything else.
const char* preprocess_place_name(PreprocessPlace place);
std::optional<PreprocessPlace> parse_preprocess_place(const std::string& text);

// kAuto resolved for an encoder on `device`.
PreprocessPlace resolve_preprocess_place(PreprocessPlace place, c10::Device device);

// Resizes and centre-crops one decoded BGR image as the spec says, and converts it to gray for
// GRAY: an 8-bit side x side image, BGR (3 channels) or gray (1). Throws Error(kInput) naming
// `source` when the result cannot be square (see preprocess_image).
cv::Mat resize_and_crop(const cv::Mat& bgr, const PreprocessSpec& spec, const std::string& source);

// Writes spec.tensor_size() floats, CHW, for one decoded BGR image. `source` names the image in
// errors (e.g. a crop smaller than the centre crop).
void preprocess_image(const cv::Mat& bgr, const PreprocessSpec& spec, float* chw, const std::string& source);

// One encoder batch decoded from files, as the decode threads of `run` and `bench` make it.
struct DecodedImages {
  // kHost: float [N, C, S, S], preprocessed. kDevice: uint8 [N, S, S, C] (BGR or gray) after
  // resize_and_crop, for normalise_pixels(). Pinned when requested (for copies to a GPU).
  at::Tensor images;
  // Per file: "" or why it cannot be used (that frame is then missing); a bad file never throws.
  std::vector<std::string> errors;
};

// Decodes `files` (JPEG -> resize -> centre crop, then the rest of the preprocessing for kHost).
// `place` must be resolved (kHost or kDevice).
DecodedImages decode_batch(const std::vector<std::filesystem::path>& files, const PreprocessSpec& spec,
                           PreprocessPlace place, bool pinned, long long max_pixels = kDefaultMaxImagePixels);

// Finishes decode_batch's kDevice pixels on `device`: uint8 [N, S, S, C] (any device; pinned host
// memory copies asynchronously) -> float32 [N, C, S, S] in the manifest's colour order, with
// (pixel * scale - mean) / std computed in float32 exactly as preprocess_image does. The result
// keeps the pixels' channels-last strides; .contiguous() gives NCHW memory.
at::Tensor normalise_pixels(const at::Tensor& pixels, const PreprocessSpec& spec, c10::Device device);

}  // namespace abaw
