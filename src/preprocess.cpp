#include "abaw/preprocess.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
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

cv::Mat resize_and_crop(const cv::Mat& bgr, const PreprocessSpec& spec, const std::string& source) {
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
  if (spec.color_order == ColorOrder::kGray) {
    cv::Mat gray;
    cv::cvtColor(view, gray, cv::COLOR_BGR2GRAY);
    return gray;
  }
  return view;
}

void preprocess_image(const cv::Mat& bgr, const PreprocessSpec& spec, float* chw,
                      const std::string& source) {
  const cv::Mat pixels = resize_and_crop(bgr, spec, source);
  const int side = spec.output_side();
  const size_t plane = static_cast<size_t>(side) * side;
  if (spec.color_order == ColorOrder::kGray) {
    const float mean = spec.mean[0], inv_std = 1.0f / spec.std[0];
    for (int y = 0; y < side; ++y) {
      const uint8_t* row = pixels.ptr<uint8_t>(y);
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
      const uint8_t* row = pixels.ptr<uint8_t>(y);
      for (int x = 0; x < side; ++x) out[y * side + x] = (row[x * 3 + sc] * spec.scale - mean) * inv_std;
    }
  }
}

DecodedImages decode_batch(const std::vector<fs::path>& files, const PreprocessSpec& spec, PreprocessPlace place,
                           bool pinned) {
  const int64_t count = static_cast<int64_t>(files.size()), side = spec.output_side(), channels = spec.channels();
  const bool pixels_only = place == PreprocessPlace::kDevice;
  DecodedImages batch;
  batch.images = pixels_only ? at::empty({count, side, side, channels}, at::TensorOptions(at::kByte).pinned_memory(pinned))
                             : at::empty({count, channels, side, side}, at::TensorOptions(at::kFloat).pinned_memory(pinned));
  batch.errors.resize(files.size());
  const size_t row_bytes = static_cast<size_t>(side) * channels;
  for (size_t i = 0; i < files.size(); ++i) {
    try {
      const cv::Mat image = decode_crop(files[i]);
      if (pixels_only) {
        const cv::Mat pixels = resize_and_crop(image, spec, files[i].string());
        uint8_t* out = batch.images.data_ptr<uint8_t>() + i * row_bytes * side;
        for (int y = 0; y < side; ++y) std::memcpy(out + y * row_bytes, pixels.ptr<uint8_t>(y), row_bytes);
      } else {
        preprocess_image(image, spec, batch.images.data_ptr<float>() + i * spec.tensor_size(), files[i].string());
      }
    } catch (const Error& e) {
      batch.errors[i] = e.what();
    } catch (const cv::Exception& e) {
      batch.errors[i] = files[i].string() + ": OpenCV: " + e.what();
    }
  }
  return batch;
}

const char* preprocess_place_name(PreprocessPlace place) {
  switch (place) {
    case PreprocessPlace::kAuto: return "auto";
    case PreprocessPlace::kHost: return "host";
    case PreprocessPlace::kDevice: return "device";
  }
  return "?";
}

std::optional<PreprocessPlace> parse_preprocess_place(const std::string& text) {
  for (PreprocessPlace place : {PreprocessPlace::kAuto, PreprocessPlace::kHost, PreprocessPlace::kDevice}) {
    if (text == preprocess_place_name(place)) return place;
  }
  return std::nullopt;
}

PreprocessPlace resolve_preprocess_place(PreprocessPlace place, c10::Device device) {
  if (place != PreprocessPlace::kAuto) return place;
  // On a GPU the decode threads then copy a quarter of the bytes and skip the float work. On a
  // CPU the "device" is the model's own thread, which is the bottleneck: keep the work on the
  // decode threads.
  return device.is_cuda() ? PreprocessPlace::kDevice : PreprocessPlace::kHost;
}

at::Tensor normalise_pixels(const at::Tensor& pixels, const PreprocessSpec& spec, c10::Device device) {
  const int channels = spec.channels();
  std::vector<float> mean(spec.mean.begin(), spec.mean.begin() + channels);
  std::vector<float> inv_std;
  for (int c = 0; c < channels; ++c) inv_std.push_back(1.0f / spec.std[c]);  // as preprocess_image
  const auto on_device = at::TensorOptions().dtype(at::kFloat).device(device);
  const at::Tensor mean_t = at::tensor(mean).view({1, channels, 1, 1}).to(on_device);
  const at::Tensor inv_std_t = at::tensor(inv_std).view({1, channels, 1, 1}).to(on_device);
  at::Tensor x = pixels.to(device, /*non_blocking=*/true).permute({0, 3, 1, 2});
  if (spec.color_order == ColorOrder::kRGB) x = x.flip({1});  // the pixels are BGR
  // Three separate float32 operations, as the host loop computes (p * scale - mean) * inv_std.
  return x.to(at::kFloat).mul(static_cast<double>(spec.scale)).sub(mean_t).mul(inv_std_t);
}

}  // namespace abaw
