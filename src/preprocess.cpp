#include "abaw/preprocess.hpp"

#include <ATen/ATen.h>

#include <csetjmp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>

#include <jpeglib.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "abaw/error.hpp"
#include "abaw/resample.hpp"

namespace fs = std::filesystem;

namespace abaw {

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
  return decode_crop_bytes(bytes, file.string(), max_pixels, exif);
}

cv::Mat decode_crop_bytes(const std::vector<unsigned char>& bytes, const std::string& source, long long max_pixels,
                          ExifOrientation exif) {
  if (bytes.empty()) throw Error(ErrorKind::kInput, "crop file is empty (0 bytes)", source);
  // libjpeg "recovers" from a truncated file by filling grey; a JPEG must end with the EOI
  // marker FF D9, so a missing one is a truncated download or a crash mid-write.
  const bool is_jpeg = bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
  if (is_jpeg) {
    size_t end = bytes.size();
    while (end > 2 && bytes[end - 1] != 0xD9) --end;  // tolerate padding after EOI
    if (end < 2 || bytes[end - 2] != 0xFF) {
      throw Error(ErrorKind::kInput, "truncated JPEG (no end-of-image marker)", source);
    }
    return decode_jpeg(bytes, max_pixels, exif, source);
  }
  // PNG: the size is in the IHDR chunk, right after the signature.
  static const unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() >= 24 && std::memcmp(bytes.data(), kPngSignature, 8) == 0) {
    auto big_endian = [&](size_t at) {
      return (static_cast<unsigned long long>(bytes[at]) << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) |
             bytes[at + 3];
    };
    check_pixels(big_endian(16), big_endian(20), max_pixels, source);
  }
  cv::Mat image = cv::imdecode(bytes, opencv_flags(exif));
  if (image.empty()) throw Error(ErrorKind::kInput, "not a decodable image", source);
  return image;
}

namespace {

// `bgr` resized to width x height by the spec's interpolation: 8-bit for the OpenCV and Pillow
// modes, float (CV_32F, unrounded, as F.interpolate leaves it) for the torch modes.
cv::Mat resize_image(const cv::Mat& bgr, int width, int height, const PreprocessSpec& spec) {
  const Interpolation mode = spec.interpolation;
  if (is_pil(mode) || is_torch(mode)) {
    const ResampleFilter filter = mode == Interpolation::kPilBicubic || mode == Interpolation::kTorchBicubic
                                      ? ResampleFilter::kBicubic
                                      : ResampleFilter::kBilinear;
    ImageU8 image{bgr.cols, bgr.rows, bgr.channels(), {}};
    const size_t row_bytes = static_cast<size_t>(bgr.cols) * bgr.channels();
    image.pixels.resize(row_bytes * bgr.rows);
    for (int y = 0; y < bgr.rows; ++y) std::memcpy(image.pixels.data() + y * row_bytes, bgr.ptr<uint8_t>(y), row_bytes);
    if (is_pil(mode)) {
      ImageU8 resized = pil_resize(image, width, height, filter);
      return cv::Mat(height, width, CV_8UC(bgr.channels()), resized.pixels.data()).clone();
    }
    std::vector<float> resized = torch_resize(image, width, height, filter, spec.antialias);
    return cv::Mat(height, width, CV_32FC(bgr.channels()), resized.data()).clone();
  }
  const int interpolation = mode == Interpolation::kBilinear  ? cv::INTER_LINEAR
                            : mode == Interpolation::kNearest ? cv::INTER_NEAREST
                            : mode == Interpolation::kArea    ? cv::INTER_AREA
                                                              : cv::INTER_CUBIC;
  cv::Mat resized;
  cv::resize(bgr, resized, cv::Size(width, height), 0, 0, interpolation);
  return resized;
}

// Writes one channel plane: (pixel * scale - mean) / std, from 8-bit or float pixels.
template <class Pixel>
void normalise_plane(const cv::Mat& pixels, int channel, int channels, float scale, float mean, float inv_std,
                     float* out) {
  for (int y = 0; y < pixels.rows; ++y) {
    const Pixel* row = pixels.ptr<Pixel>(y);
    for (int x = 0; x < pixels.cols; ++x)
      out[y * pixels.cols + x] = (row[x * channels + channel] * scale - mean) * inv_std;
  }
}

}  // namespace

cv::Mat resize_and_crop(const cv::Mat& bgr, const PreprocessSpec& spec, const std::string& source) {
  int width = spec.resize, height = spec.resize;
  if (spec.resize_mode == ResizeMode::kShorterSide) {
    // torchvision Resize(int): the longer side is truncated, not rounded.
    if (bgr.cols <= bgr.rows) {
      height = static_cast<int>(static_cast<long long>(spec.resize) * bgr.rows / bgr.cols);
    } else {
      width = static_cast<int>(static_cast<long long>(spec.resize) * bgr.cols / bgr.rows);
    }
  }
  // No resize at the target size: every mode would return the pixels unchanged.
  cv::Mat resized = bgr.cols != width || bgr.rows != height ? resize_image(bgr, width, height, spec) : bgr;
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
  const int side = spec.output_side(), channels = pixels.channels();
  const size_t plane = static_cast<size_t>(side) * side;
  // BGR source channel feeding each output channel (gray has one).
  const int rgb = spec.color_order == ColorOrder::kRGB;
  const int source_channel[3] = {rgb ? 2 : 0, 1, rgb ? 0 : 2};
  for (int c = 0; c < spec.channels(); ++c) {
    const int from = channels == 1 ? 0 : source_channel[c];
    const float mean = spec.mean[c], inv_std = 1.0f / spec.std[c];
    if (pixels.depth() == CV_32F) {
      normalise_plane<float>(pixels, from, channels, spec.scale, mean, inv_std, chw + c * plane);
    } else {
      normalise_plane<uint8_t>(pixels, from, channels, spec.scale, mean, inv_std, chw + c * plane);
    }
  }
}

namespace {

// An empty batch of `count` images: see DecodedImages.
DecodedImages allocate_batch(size_t count, const PreprocessSpec& spec, PreprocessPlace place, bool pinned) {
  const int64_t n = static_cast<int64_t>(count), side = spec.output_side(), channels = spec.channels();
  DecodedImages batch;
  batch.images = place == PreprocessPlace::kDevice
                     ? at::empty({n, side, side, channels}, at::TensorOptions(at::kByte).pinned_memory(pinned))
                     : at::empty({n, channels, side, side}, at::TensorOptions(at::kFloat).pinned_memory(pinned));
  batch.errors.resize(count);
  return batch;
}

// Fills image `i` of `batch` from a decoded BGR image; a bad one gets its error instead.
void fill_image(DecodedImages& batch, size_t i, const std::function<cv::Mat()>& decode, const PreprocessSpec& spec,
                PreprocessPlace place, const std::string& source) {
  const int64_t side = spec.output_side(), channels = spec.channels();
  const size_t row_bytes = static_cast<size_t>(side) * channels;
  try {
    const cv::Mat image = decode();
    if (place == PreprocessPlace::kDevice) {
      const cv::Mat pixels = resize_and_crop(image, spec, source);
      if (pixels.depth() != CV_8U) throw Error(ErrorKind::kUsage, "8-bit pixels needed on the device", source);
      uint8_t* out = batch.images.data_ptr<uint8_t>() + i * row_bytes * side;
      for (int y = 0; y < side; ++y) std::memcpy(out + y * row_bytes, pixels.ptr<uint8_t>(y), row_bytes);
    } else {
      preprocess_image(image, spec, batch.images.data_ptr<float>() + i * spec.tensor_size(), source);
    }
  } catch (const Error& e) {
    batch.errors[i] = e.what();
  } catch (const cv::Exception& e) {
    batch.errors[i] = source + ": OpenCV: " + e.what();
  }
}

}  // namespace

DecodedImages decode_batch(const std::vector<fs::path>& files, const PreprocessSpec& spec, PreprocessPlace place,
                           bool pinned, long long max_pixels) {
  DecodedImages batch = allocate_batch(files.size(), spec, place, pinned);
  for (size_t i = 0; i < files.size(); ++i) {
    fill_image(
        batch, i, [&] { return decode_crop(files[i], max_pixels, spec.exif); }, spec, place, files[i].string());
  }
  return batch;
}

DecodedImages preprocess_images(const std::vector<cv::Mat>& images, const std::vector<std::string>& sources,
                                const PreprocessSpec& spec, PreprocessPlace place, bool pinned) {
  DecodedImages batch = allocate_batch(images.size(), spec, place, pinned);
  for (size_t i = 0; i < images.size(); ++i) {
    fill_image(batch, i, [&] { return images[i]; }, spec, place, sources[i]);
  }
  return batch;
}

PreprocessPlace resolve_preprocess_place(PreprocessPlace place, c10::Device device, const PreprocessSpec& spec) {
  if (is_torch(spec.interpolation)) {
    if (place == PreprocessPlace::kDevice) {
      throw Error(ErrorKind::kUsage, std::string("--preprocess-on device needs 8-bit pixels, but interpolation '") +
                                         name_of(kInterpolationNames, spec.interpolation) +
                                         "' resizes to floats; use --preprocess-on host");
    }
    return PreprocessPlace::kHost;
  }
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
