// Image resizing that reproduces what Python training code fed a model, so that a model trained on
// Pillow- or torch-resized pixels sees the same pixels here (OpenCV's cv::resize differs from both:
// its bicubic uses a = -0.75 and it never antialiases).
//
// - pil_resize: Pillow's Image.resize(size, BILINEAR | BICUBIC), bit-exact with Pillow 9.4
//   (libImaging/Resample.c).
// - torch_resize: torch.nn.functional.interpolate(x, size, mode="bilinear" | "bicubic",
//   align_corners=False, antialias=False | True) on float32 pixels 0..255, to float rounding
//   (torch 1.13's CPU kernels; see torch_resize for the measured difference).
// - area_shrink: OpenCV's cv::resize(INTER_AREA) of a rectangle to a size no larger, to +-1,
//   several times faster at the ratios face crops shrink by.
//
// Plain C++17, no OpenCV or torch: callers wrap their own buffers in ImageU8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace abaw {

// The interpolation filter of a resize.
//   kBilinear: triangle filter (support 1).
//   kBicubic: cubic convolution, a = -0.5 for Pillow and torch's antialiased mode, a = -0.75 for
//   torch without antialias (each library's own choice, reproduced as is).
enum class ResampleFilter { kBilinear, kBicubic };

// An 8-bit interleaved image: `height` rows of `width` pixels of `channels` bytes, rows contiguous
// (pixels.size() == height * width * channels, no row padding). Channels are resampled
// independently of one another, so their order (RGB or BGR) does not matter.
struct ImageU8 {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

// Pillow's `image.resize((width, height), resample=BILINEAR | BICUBIC)` (no `box`, no
// `reducing_gap`), bit for bit: per axis a filter whose support grows with the shrink factor
// (antialiasing), weights normalised per output pixel and rounded to 22-bit fixed point, a
// horizontal pass to an 8-bit intermediate, then a vertical pass, each rounded and clipped to
// 0..255; a pass whose size does not change is skipped, and an unchanged size returns a copy.
//
// This is Pillow on modes whose bands are resized independently: L (channels 1), RGB (3), and 4-
// channel modes without straight alpha (RGBX, CMYK, RGBa). Pillow resizes RGBA and LA by first
// premultiplying colour by alpha (then dividing back); this function does not, so for those modes
// premultiply before and unpremultiply after as Pillow does, or expect different edge pixels.
//
// `image` must be valid (channels 1..4, width and height >= 1, pixels.size() matching) and
// `width`, `height` >= 1; throws std::invalid_argument otherwise.
ImageU8 pil_resize(const ImageU8& image, int width, int height, ResampleFilter filter);

// `torch.nn.functional.interpolate(x, size=(height, width), mode=..., align_corners=False,
// antialias=antialias)` where x is the image as a float32 tensor [1, C, H, W] of its 8-bit values
// (0..255, not scaled). Returns height * width * channels floats, interleaved like the input
// (HWC), not planar.
//
// Without antialias: torch's upsample kernels, 2 (bilinear) or 4 (bicubic, a = -0.75) taps per axis
// around the source coordinate (dst + 0.5) * in / out - 0.5 whatever the scale (shrinking skips
// pixels and aliases), bilinear clamping negative coordinates to 0 and bicubic clamping tap indices
// to the border. With antialias: torch's _upsample_{bilinear,bicubic}2d_aa, the same separable
// filters as Pillow (bicubic a = -0.5) in float, without rounding or clipping, so values can
// overshoot 0..255 by a few units near edges (as with bicubic without antialias).
//
// Weights are computed as torch's CPU build computes them (float, fusing the multiply-adds its
// FMA-enabled kernels fuse, which matters where bicubic coefficients cancel) and summed in its
// order with fused multiply-adds, so results agree with torch 1.13's CPU kernels to a few float
// ulps, not bit for bit: torch's vectorised loops fuse the accumulation unevenly, and its
// channels-last bilinear kernel (which also serves 1-channel tensors) multiplies the two axes'
// weights first. Measured on 0..255 noise: at most 6.1e-5 in tests/e2e/test_resample.py, 9.2e-5
// over ~400 random size pairs up to 700 pixels. Same contract on `image`, `width`, `height` as pil_resize.
std::vector<float> torch_resize(const ImageU8& image, int width, int height, ResampleFilter filter, bool antialias);

// 8-bit interleaved pixels owned by someone else: `height` rows of `width` pixels of `channels`
// bytes, each row starting `row_bytes` after the one before (a cv::Mat's step).
struct ImageU8View {
  const uint8_t* pixels = nullptr;
  int width = 0;
  int height = 0;
  int channels = 0;
  size_t row_bytes = 0;
};

// The `width` x `height` rectangle whose top-left pixel is (`left`, `top`) of `image`, shrunk to
// `out_width` x `out_height` (no larger on either axis) into `out` (rows of out_width * channels
// bytes, contiguous); the rectangle may reach outside the image, whose pixels there count as 0
// (pass a view of part of a frame to black out the rest). Each output pixel is the mean of the
// source area it covers, partly covered pixels weighted by the part covered: the weights of
// OpenCV's cv::resize(INTER_AREA) (imgproc/src/resize.cpp, computeResizeAreaTab), so the result is
// that of cutting the rectangle into a zeroed canvas and calling cv::resize, except that the sums
// run in another order (columns of rows, not rows of columns) and a value may come out 1 apart
// (tests/unit/resample_test.cpp). Why not cv::resize: at ratios that are not whole numbers it
// walks per-pixel tables one value at a time (0.7-1 ms for 330-600 px to 112 px); the vertical
// pass here runs over whole rows, which the compiler vectorises. Throws std::invalid_argument on
// an output size below 1 or above the rectangle's, or an invalid view.
void area_shrink(const ImageU8View& image, int left, int top, int width, int height, int out_width, int out_height,
                 uint8_t* out);

}  // namespace abaw
