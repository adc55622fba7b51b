#include "abaw/preprocess.hpp"

#include <ATen/ATen.h>

#include <csetjmp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include <jpeglib.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "abaw/error.hpp"

namespace fs = std::filesystem;

namespace abaw {

const char* interpolation_name(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::kBicubic:
      return "bicubic";
    case Interpolation::kBilinear:
      return "bilinear";
    case Interpolation::kNearest:
      return "nearest";
    case Interpolation::kArea:
      return "area";
  }
  return "?";
}

const char* color_order_name(ColorOrder order) {
  switch (order) {
    case ColorOrder::kRGB:
      return "RGB";
    case ColorOrder::kBGR:
      return "BGR";
    case ColorOrder::kGray:
      return "GRAY";
  }
  return "?";
}

const char* exif_orientation_name(ExifOrientation exif) { return exif == ExifOrientation::kApply ? "apply" : "ignore"; }

const char* resize_mode_name(ResizeMode mode) { return mode == ResizeMode::kShorterSide ? "shorter_side" : "stretch"; }

#ifndef JCS_EXTENSIONS
#error "libjpeg-turbo is needed (JCS_EXT_BGR output, as OpenCV decodes)"
#endif

namespace {

// libjpeg reports fatal errors through error_exit, which must not return: it jumps back into
// decode_jpeg. Recoverable damage ("Corrupt JPEG data: premature end of data segment") is a
// warning that libjpeg would print to stderr, naming no file, and then fill in grey or garbage.
struct JpegErrors {
  jpeg_error_mgr manager;  // first: libjpeg sees a pointer to it
  std::jmp_buf fatal_exit;
  char fatal[JMSG_LENGTH_MAX] = {};
  char first_warning[JMSG_LENGTH_MAX] = {};
};

void jpeg_fatal(j_common_ptr info) {
  auto* errors = reinterpret_cast<JpegErrors*>(info->err);
  (*info->err->format_message)(info, errors->fatal);
  std::longjmp(errors->fatal_exit, 1);
}

void jpeg_message(j_common_ptr info, int level) {
  if (level >= 0) return;  // trace messages
  auto* errors = reinterpret_cast<JpegErrors*>(info->err);
  if (info->err->num_warnings++ == 0) (*info->err->format_message)(info, errors->first_warning);
}

int opencv_flags(ExifOrientation exif) {
  return exif == ExifOrientation::kApply ? cv::IMREAD_COLOR : cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION;
}

bool has_exif(j_decompress_ptr info) {
  for (jpeg_saved_marker_ptr marker = info->marker_list; marker; marker = marker->next) {
    if (marker->marker == JPEG_APP0 + 1 && marker->data_length >= 6 && std::memcmp(marker->data, "Exif\0\0", 6) == 0) {
      return true;
    }
  }
  return false;
}

void check_pixels(unsigned long long width, unsigned long long height, long long max_pixels,
                  const std::string& source) {
  if (width * height > static_cast<unsigned long long>(max_pixels)) {
    throw Error(ErrorKind::kInput,
                "image is " + std::to_string(width) + "x" + std::to_string(height) + ", over the limit of " +
                    std::to_string(max_pixels) + " pixels (--max-image-pixels); not decoded",
                source);
  }
}

// Decodes with libjpeg-turbo as OpenCV does (same library, default settings, BGR output), but
// with its warnings turned into a verdict and the size checked from the header. Files OpenCV
// treats specially (EXIF orientation, CMYK) are checked here and then decoded by OpenCV.
cv::Mat decode_jpeg(const std::vector<unsigned char>& bytes, long long max_pixels, ExifOrientation exif,
                    const std::string& source) {
  jpeg_decompress_struct info;
  JpegErrors errors;
  info.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = jpeg_fatal;
  errors.manager.emit_message = jpeg_message;
  cv::Mat image;
  bool opencv_decodes = false;
  if (setjmp(errors.fatal_exit)) {
    jpeg_destroy_decompress(&info);
    throw Error(ErrorKind::kInput, std::string("corrupt JPEG: ") + errors.fatal, source);
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(&info, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(&info, TRUE);
  try {
    check_pixels(info.image_width, info.image_height, max_pixels, source);
  } catch (...) {
    jpeg_destroy_decompress(&info);
    throw;
  }
  opencv_decodes = info.num_components == 4 || (exif == ExifOrientation::kApply && has_exif(&info));
  info.out_color_space = info.num_components == 4 ? info.jpeg_color_space : JCS_EXT_BGR;
  jpeg_start_decompress(&info);
  image.create(static_cast<int>(info.output_height), static_cast<int>(info.output_width),
               CV_8UC(info.output_components));
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = image.ptr<uint8_t>(static_cast<int>(info.output_scanline));
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  const long warnings = info.err->num_warnings;
  jpeg_destroy_decompress(&info);
  if (warnings > 0) {
    throw Error(ErrorKind::kInput,
                std::string("corrupt JPEG data (") + errors.first_warning + "); the frame is treated as unreadable",
                source);
  }
  if (opencv_decodes) image = cv::imdecode(bytes, opencv_flags(exif));
  return image;
}

}  // namespace

cv::Mat decode_crop(const fs::path& file, long long max_pixels, ExifOrientation exif) {
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
    return decode_jpeg(bytes, max_pixels, exif, file.string());
  }
  // PNG: the size is in the IHDR chunk, right after the signature.
  static const unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() >= 24 && std::memcmp(bytes.data(), kPngSignature, 8) == 0) {
    auto big_endian = [&](size_t at) {
      return (static_cast<unsigned long long>(bytes[at]) << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) |
             bytes[at + 3];
    };
    check_pixels(big_endian(16), big_endian(20), max_pixels, file.string());
  }
  cv::Mat image = cv::imdecode(bytes, opencv_flags(exif));
  if (image.empty()) throw Error(ErrorKind::kInput, "not a decodable image", file.string());
  return image;
}

cv::Mat resize_and_crop(const cv::Mat& bgr, const PreprocessSpec& spec, const std::string& source) {
  int interpolation = cv::INTER_CUBIC;
  switch (spec.interpolation) {
    case Interpolation::kBicubic:
      interpolation = cv::INTER_CUBIC;
      break;
    case Interpolation::kBilinear:
      interpolation = cv::INTER_LINEAR;
      break;
    case Interpolation::kNearest:
      interpolation = cv::INTER_NEAREST;
      break;
    case Interpolation::kArea:
      interpolation = cv::INTER_AREA;
      break;
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

void preprocess_image(const cv::Mat& bgr, const PreprocessSpec& spec, float* chw, const std::string& source) {
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
                           bool pinned, long long max_pixels) {
  const int64_t count = static_cast<int64_t>(files.size()), side = spec.output_side(), channels = spec.channels();
  const bool pixels_only = place == PreprocessPlace::kDevice;
  DecodedImages batch;
  batch.images = pixels_only
                     ? at::empty({count, side, side, channels}, at::TensorOptions(at::kByte).pinned_memory(pinned))
                     : at::empty({count, channels, side, side}, at::TensorOptions(at::kFloat).pinned_memory(pinned));
  batch.errors.resize(files.size());
  const size_t row_bytes = static_cast<size_t>(side) * channels;
  for (size_t i = 0; i < files.size(); ++i) {
    try {
      const cv::Mat image = decode_crop(files[i], max_pixels, spec.exif);
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
    case PreprocessPlace::kAuto:
      return "auto";
    case PreprocessPlace::kHost:
      return "host";
    case PreprocessPlace::kDevice:
      return "device";
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
