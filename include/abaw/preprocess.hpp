// Crop decoding and the encoder's preprocessing: JPEG -> resize -> centre crop -> colour order ->
// (pixel * scale - mean) / std, written as float CHW. What the preprocessing is: preprocess_spec.hpp.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <opencv2/core.hpp>

#include "abaw/preprocess_spec.hpp"

namespace abaw {

// Decodes an image file to 8-bit BGR (grayscale JPEGs are expanded to 3 channels), pixel for
// pixel as cv::imdecode (with IMREAD_IGNORE_ORIENTATION unless `exif` is kApply). Throws Error(kInput) naming the file when it is empty, truncated, not
// an image, larger than `max_pixels` by its header, or a JPEG with corrupt data (any libjpeg
// warning: such files decode to partly grey or garbled pixels).
// `exif` says whether an EXIF orientation tag rotates the pixels.
cv::Mat decode_crop(const std::filesystem::path& file, long long max_pixels = kDefaultMaxImagePixels,
                    ExifOrientation exif = ExifOrientation::kIgnore);

// decode_crop for a file's bytes already in memory; `source` names it in errors.
cv::Mat decode_crop_bytes(const std::vector<unsigned char>& bytes, const std::string& source,
                          long long max_pixels = kDefaultMaxImagePixels, ExifOrientation exif = ExifOrientation::kIgnore);

// kAuto resolved for an encoder on `device` and the preprocessing `spec`: the torch
// interpolation modes resize to floats, which only the host path carries (kDevice is then an
// Error(kUsage)).
PreprocessPlace resolve_preprocess_place(PreprocessPlace place, c10::Device device, const PreprocessSpec& spec);

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

// decode_batch for images already decoded (8-bit BGR): `run --videos`' crops. `sources` name
// them in errors.
DecodedImages preprocess_images(const std::vector<cv::Mat>& images, const std::vector<std::string>& sources,
                                const PreprocessSpec& spec, PreprocessPlace place, bool pinned);

// Finishes decode_batch's kDevice pixels on `device`: uint8 [N, S, S, C] (any device; pinned host
// memory copies asynchronously) -> float32 [N, C, S, S] in the manifest's colour order, with
// (pixel * scale - mean) / std computed in float32 exactly as preprocess_image does. The result
// keeps the pixels' channels-last strides; .contiguous() gives NCHW memory.
at::Tensor normalise_pixels(const at::Tensor& pixels, const PreprocessSpec& spec, c10::Device device);

}  // namespace abaw
