// Pillow's and torch's resize, reproduced, and OpenCV's area shrink, to +-1: see
// resample.hpp. All are separable: per axis a table of taps (source indices and weights for each
// output index) computed once, then two passes, horizontal first for Pillow and torch (as they
// do), vertical first for the area shrink (whole rows at a time, for speed).
//
// Sources followed (expressions are kept in the same order and types, since the point is equal
// results, not just similar ones; torch's from Debian's pytorch 1.13.1 source package):
// - Pillow 9.4.0 src/libImaging/Resample.c: precompute_coeffs, normalize_coeffs_8bpc,
//   ImagingResample{Horizontal,Vertical}_8bpc, ImagingResampleInner.
// - torch 1.13 aten/src/ATen/native/UpSample.h (area_pixel_compute_scale,
//   area_pixel_compute_source_index, compute_source_index_and_lambda,
//   get_cubic_upsample_coefficients) and native/cpu/UpSampleKernel.cpp (HelperInterpLinear,
//   HelperInterpCubic, the antialiased _compute_indices_weights_aa and its aa_filter functions).
#include "abaw/resample.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// No multiply-add in this file may be contracted into a fused one, whatever -march the project is
// built with: Pillow's coefficients must round as its baseline x86-64 build (no FMA) computes them,
// and torch's weights fuse exactly the steps that torch's FMA-enabled build fuses (std::fma below),
// no more. (Measured: without this, -O3 -march=native moves torch bicubic outputs by 1.5e-4.)
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace abaw {
namespace {

// Per output index of one axis: `count[o]` taps, source indices `index[o * ksize + j]` and weights
// `weight[o * ksize + j]` for j < count[o]. Indices may repeat (torch's clamped bicubic border).
template <typename Weight>
struct Taps {
  int ksize = 0;
  std::vector<int> count;
  std::vector<int> index;
  std::vector<Weight> weight;

  void resize(int out_size, int taps) {
    ksize = taps;
    count.assign(out_size, 0);
    index.assign(static_cast<size_t>(out_size) * taps, 0);
    weight.assign(static_cast<size_t>(out_size) * taps, Weight{});
  }
  // The smallest and one past the largest source index used: the rows a vertical pass reads.
  std::pair<int, int> span() const {
    int lo = 0, hi = 0;
    bool first = true;
    for (size_t o = 0; o < count.size(); ++o) {
      for (int j = 0; j < count[o]; ++j) {
        const int i = index[o * ksize + j];
        if (first || i < lo) lo = i;
        if (first || i + 1 > hi) hi = i + 1;
        first = false;
      }
    }
    return {lo, hi};
  }
};

void check_arguments(const ImageU8& image, int width, int height) {
  if (image.channels < 1 || image.channels > 4) {
    throw std::invalid_argument("resample: channels must be 1..4, got " + std::to_string(image.channels));
  }
  if (image.width < 1 || image.height < 1) {
    throw std::invalid_argument("resample: empty input image " + std::to_string(image.width) + "x" +
                                std::to_string(image.height));
  }
  if (image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels) {
    throw std::invalid_argument("resample: pixels.size() " + std::to_string(image.pixels.size()) + " does not match " +
                                std::to_string(image.width) + "x" + std::to_string(image.height) + "x" +
                                std::to_string(image.channels));
  }
  if (width < 1 || height < 1) {
    throw std::invalid_argument("resample: output size must be positive, got " + std::to_string(width) + "x" +
                                std::to_string(height));
  }
}

// ---------------------------------------------------------------------------------------------
// Pillow

// Pillow's bilinear_filter and bicubic_filter (a = -0.5), in double.
double pil_bilinear(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

double pil_bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

constexpr int kPilPrecisionBits = 32 - 8 - 2;

// precompute_coeffs + normalize_coeffs_8bpc for box (0, in_size): weights in 22-bit fixed point.
Taps<int32_t> pil_taps(int in_size, int out_size, ResampleFilter filter) {
  double (*fn)(double) = filter == ResampleFilter::kBicubic ? pil_bicubic : pil_bilinear;
  const double filter_support = filter == ResampleFilter::kBicubic ? 2.0 : 1.0;
  // Pillow's box is float: in0 = 0, in1 = in_size.
  const float in0 = 0.0f;
  const float in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter_support * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;

  Taps<int32_t> taps;
  taps.resize(out_size, ksize);
  std::vector<double> k(ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      const double w = fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    taps.count[xx] = xmax;
    for (int x = 0; x < xmax; ++x) {
      const size_t at = static_cast<size_t>(xx) * ksize + x;
      taps.index[at] = xmin + x;
      taps.weight[at] = k[x] < 0 ? static_cast<int32_t>(-0.5 + k[x] * (1 << kPilPrecisionBits))
                                 : static_cast<int32_t>(0.5 + k[x] * (1 << kPilPrecisionBits));
    }
  }
  return taps;
}

// Pillow's clip8: the accumulator (started at half a unit) shifted down and clipped to 0..255. The
// sums are kept in uint32_t so that they wrap like Pillow's int arithmetic would, without
// undefined behaviour (they never come near 2^31 for these filters).
inline uint8_t pil_clip8(uint32_t sum) {
  const int32_t v = static_cast<int32_t>(sum) >> kPilPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

constexpr uint32_t kPilHalf = 1u << (kPilPrecisionBits - 1);

// ImagingResampleHorizontal_8bpc on rows [row_begin, row_end) of `src` (width src_width). Pillow's
// taps are contiguous (xmin, xmin + 1, ...), so only the first index is read. Accumulators are
// separate variables (C is a constant) to keep them in registers.
template <int C>
void pil_horizontal(const uint8_t* src, int src_width, int row_begin, int row_end, const Taps<int32_t>& taps,
                    uint8_t* dst) {
  const int out_width = static_cast<int>(taps.count.size());
  const size_t ksize = taps.ksize;
  const int* index = taps.index.data();
  const int32_t* weight = taps.weight.data();
  const int* count = taps.count.data();
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* row = src + static_cast<size_t>(y) * src_width * C;
    uint8_t* out = dst + static_cast<size_t>(y - row_begin) * out_width * C;
    for (int xx = 0; xx < out_width; ++xx, out += C) {
      const uint8_t* p = row + static_cast<size_t>(index[xx * ksize]) * C;
      const int32_t* k = weight + xx * ksize;
      const int n = count[xx];
      uint32_t a0 = kPilHalf, a1 = kPilHalf, a2 = kPilHalf, a3 = kPilHalf;
      for (int x = 0; x < n; ++x, p += C) {
        const uint32_t w = static_cast<uint32_t>(k[x]);
        a0 += p[0] * w;
        if constexpr (C > 1) a1 += p[1] * w;
        if constexpr (C > 2) a2 += p[2] * w;
        if constexpr (C > 3) a3 += p[3] * w;
      }
      out[0] = pil_clip8(a0);
      if constexpr (C > 1) out[1] = pil_clip8(a1);
      if constexpr (C > 2) out[2] = pil_clip8(a2);
      if constexpr (C > 3) out[3] = pil_clip8(a3);
    }
  }
}

// Vertical passes work on kBlock adjacent values at a time, all taps, so that the accumulators stay
// in registers and the fixed-length inner loops vectorise even at -O2.
constexpr size_t kBlock = 16;

// ImagingResampleVertical_8bpc: `src` rows of `row_size` bytes, the first being source row
// `row_offset` (taps index source rows).
void pil_vertical(const uint8_t* src, size_t row_size, int row_offset, const Taps<int32_t>& taps, uint8_t* dst) {
  const int out_height = static_cast<int>(taps.count.size());
  std::vector<const uint8_t*> rows(taps.ksize);
  for (int yy = 0; yy < out_height; ++yy) {
    const size_t base = static_cast<size_t>(yy) * taps.ksize;
    const int n = taps.count[yy];
    const int32_t* k = &taps.weight[base];
    for (int y = 0; y < n; ++y) rows[y] = src + static_cast<size_t>(taps.index[base + y] - row_offset) * row_size;
    uint8_t* out = dst + static_cast<size_t>(yy) * row_size;
    size_t i = 0;
    for (; i + kBlock <= row_size; i += kBlock) {
      uint32_t acc[kBlock];
      for (size_t j = 0; j < kBlock; ++j) acc[j] = kPilHalf;
      for (int y = 0; y < n; ++y) {
        const uint8_t* row = rows[y] + i;
        const uint32_t w = static_cast<uint32_t>(k[y]);
        for (size_t j = 0; j < kBlock; ++j) acc[j] += row[j] * w;
      }
      for (size_t j = 0; j < kBlock; ++j) out[i + j] = pil_clip8(acc[j]);
    }
    for (; i < row_size; ++i) {
      uint32_t acc = kPilHalf;
      for (int y = 0; y < n; ++y) acc += rows[y][i] * static_cast<uint32_t>(k[y]);
      out[i] = pil_clip8(acc);
    }
  }
}

void pil_horizontal_any(int channels, const uint8_t* src, int src_width, int row_begin, int row_end,
                        const Taps<int32_t>& taps, uint8_t* dst) {
  switch (channels) {
    case 1:
      return pil_horizontal<1>(src, src_width, row_begin, row_end, taps, dst);
    case 2:
      return pil_horizontal<2>(src, src_width, row_begin, row_end, taps, dst);
    case 3:
      return pil_horizontal<3>(src, src_width, row_begin, row_end, taps, dst);
    default:
      return pil_horizontal<4>(src, src_width, row_begin, row_end, taps, dst);
  }
}

// ---------------------------------------------------------------------------------------------
// torch

// compute_scales_value without a scale factor (F.interpolate given `size`): float(in) / out.
float torch_scale(int in_size, int out_size) { return static_cast<float>(in_size) / out_size; }

// HelperInterpLinear::compute_indices_weights with compute_source_index_and_lambda (UpSample.h):
// the source coordinate in double (acc_type<float> on the CPU), clamped at 0, 2 taps.
Taps<float> torch_linear_taps(int in_size, int out_size) {
  Taps<float> taps;
  taps.resize(out_size, 2);
  const float ratio = torch_scale(in_size, out_size);
  for (int i = 0; i < out_size; ++i) {
    int64_t i0, i1;
    float l0, l1;
    if (out_size == in_size) {
      i0 = i1 = i;
      l0 = 1.0f;
      l1 = 0.0f;
    } else {
      double real = static_cast<double>(ratio) * (i + 0.5) - 0.5;
      if (real < 0) real = 0;
      i0 = static_cast<int64_t>(real);
      const int64_t offset = i0 < in_size - 1 ? 1 : 0;
      i1 = i0 + offset;
      l1 = static_cast<float>(real - static_cast<double>(i0));
      l0 = 1.0f - l1;
    }
    taps.count[i] = 2;
    taps.index[2 * i] = static_cast<int>(i0);
    taps.index[2 * i + 1] = static_cast<int>(i1);
    taps.weight[2 * i] = l0;
    taps.weight[2 * i + 1] = l1;
  }
  return taps;
}

// get_cubic_upsample_coefficients' cubic_convolution1/2 (A = -0.75), in float. Near |x| = 2 these
// cancel (terms ~3, result ~0.003), so how the compiler fused multiply-adds changes weights by up to
// 1.4e-6 and outputs by up to 5.6e-4: the fused steps (std::fma) are those of torch's own CPU build
// (its AVX2/AVX-512 kernels are compiled with FMA; measured on Debian's 1.13.1, which matches them
// weight for weight), the rest stays unfused.
float cubic_convolution1(float x, float A) {
  const float t = std::fma(A + 2, x, -(A + 3));
  return t * x * x + 1;
}
float cubic_convolution2(float x, float A) {
  const float t = std::fma(std::fma(A, x, -(5 * A)), x, 8 * A);
  return t * x - 4 * A;
}

// HelperInterpCubic::compute_indices_weights: the source coordinate in double (acc_type<float> on
// the CPU; not clamped), floored as a float (floorf), 4 taps at floor - 1 .. floor + 2, indices
// clamped to the border, coefficients in float.
Taps<float> torch_cubic_taps(int in_size, int out_size) {
  Taps<float> taps;
  taps.resize(out_size, 4);
  const float scale = torch_scale(in_size, out_size);
  for (int i = 0; i < out_size; ++i) {
    const double real = static_cast<double>(scale) * (i + 0.5) - 0.5;
    const int64_t input_index = static_cast<int64_t>(std::floor(static_cast<float>(real)));
    const float t = static_cast<float>(real - static_cast<double>(input_index));
    const float A = -0.75f;
    float coeffs[4];
    const float x1 = t;
    coeffs[0] = cubic_convolution2(static_cast<float>(x1 + 1.0), A);
    coeffs[1] = cubic_convolution1(x1, A);
    const float x2 = static_cast<float>(1.0 - t);
    coeffs[2] = cubic_convolution1(x2, A);
    coeffs[3] = cubic_convolution2(static_cast<float>(x2 + 1.0), A);
    taps.count[i] = 4;
    for (int j = 0; j < 4; ++j) {
      const int64_t index = std::max<int64_t>(std::min<int64_t>(input_index - 1 + j, in_size - 1), 0);
      taps.index[4 * i + j] = static_cast<int>(index);
      taps.weight[4 * i + j] = coeffs[j];
    }
  }
  return taps;
}

// The antialiased kernels' aa_filter functions: float argument, double constants.
float torch_aa_linear(float x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return static_cast<float>(1.0 - x);
  return 0.0f;
}

// (((x - 5) * x + 8) * x - 4) is float arithmetic there (int constants) and cancels near |x| = 2:
// fused as torch's build does (see cubic_convolution1).
float torch_aa_cubic(float x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return static_cast<float>(((a + 2.0) * x - (a + 3.0)) * x * x + 1);
  if (x < 2.0) return static_cast<float>(std::fma(std::fma(x - 5, x, 8.0f), x, -4.0f) * a);
  return 0.0f;
}

// _compute_indices_weights_aa: Pillow's scheme (support scaled when shrinking, weights normalised)
// in float.
Taps<float> torch_aa_taps(int in_size, int out_size, ResampleFilter filter) {
  const bool cubic = filter == ResampleFilter::kBicubic;
  float (*fn)(float) = cubic ? torch_aa_cubic : torch_aa_linear;
  const int base_size = cubic ? 4 : 2;
  const float scale = torch_scale(in_size, out_size);
  const float support = static_cast<float>(scale >= 1.0 ? (base_size * 0.5) * scale : base_size * 0.5);
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const float invscale = static_cast<float>(scale >= 1.0 ? 1.0 / scale : 1.0);

  Taps<float> taps;
  taps.resize(out_size, ksize);
  for (int i = 0; i < out_size; ++i) {
    const float center = static_cast<float>(scale * (i + 0.5));
    float total_w = 0.0f;
    const int64_t xmin = std::max(static_cast<int64_t>(center - support + 0.5), int64_t{0});
    const int64_t xsize = std::min(static_cast<int64_t>(center + support + 0.5), int64_t{in_size}) - xmin;
    float* w = &taps.weight[static_cast<size_t>(i) * ksize];
    for (int64_t j = 0; j < xsize; ++j) {
      const float v = fn(static_cast<float>((static_cast<float>(j + xmin) - center + 0.5) * invscale));
      w[j] = v;
      total_w += v;
    }
    for (int64_t j = 0; j < xsize; ++j) {
      if (total_w != 0.0) w[j] /= total_w;
    }
    taps.count[i] = static_cast<int>(xsize);
    for (int64_t j = 0; j < xsize; ++j) taps.index[static_cast<size_t>(i) * ksize + j] = static_cast<int>(xmin + j);
  }
  return taps;
}

Taps<float> torch_taps(int in_size, int out_size, ResampleFilter filter, bool antialias) {
  if (antialias) return torch_aa_taps(in_size, out_size, filter);
  return filter == ResampleFilter::kBicubic ? torch_cubic_taps(in_size, out_size)
                                            : torch_linear_taps(in_size, out_size);
}

// a * b + c rounded once, as the fused multiply-adds of torch's CPU kernels (`output += t * wts`
// compiled with FMA). The product of two floats is exact in double, so this is the true fused result
// except when the double sum lands exactly halfway between two floats (double rounding, about once
// in 2^29): plain SSE2 arithmetic that vectorises, where std::fma would be a libm call per tap on a
// baseline x86-64 build.
inline float fused_multiply_add(float a, float b, float c) {
  return static_cast<float>(static_cast<double>(a) * b + c);
}

// One output value: in[0] * w[0] + in[1] * w[1] + ..., summed left to right from the first product
// as torch's interpolate loops do.
template <int C, typename Src>
void torch_horizontal(const Src* src, int src_width, int row_begin, int row_end, const Taps<float>& taps, float* dst) {
  const int out_width = static_cast<int>(taps.count.size());
  const size_t ksize = taps.ksize;
  const int* index = taps.index.data();
  const float* weight = taps.weight.data();
  const int* count = taps.count.data();
  for (int y = row_begin; y < row_end; ++y) {
    const Src* row = src + static_cast<size_t>(y) * src_width * C;
    float* out = dst + static_cast<size_t>(y - row_begin) * out_width * C;
    for (int xx = 0; xx < out_width; ++xx, out += C) {
      const int* idx = index + xx * ksize;
      const float* k = weight + xx * ksize;
      const int n = count[xx];
      const Src* p = row + static_cast<size_t>(idx[0]) * C;
      float a0 = static_cast<float>(p[0]) * k[0], a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
      if constexpr (C > 1) a1 = static_cast<float>(p[1]) * k[0];
      if constexpr (C > 2) a2 = static_cast<float>(p[2]) * k[0];
      if constexpr (C > 3) a3 = static_cast<float>(p[3]) * k[0];
      for (int x = 1; x < n; ++x) {
        p = row + static_cast<size_t>(idx[x]) * C;
        const float w = k[x];
        a0 = fused_multiply_add(static_cast<float>(p[0]), w, a0);
        if constexpr (C > 1) a1 = fused_multiply_add(static_cast<float>(p[1]), w, a1);
        if constexpr (C > 2) a2 = fused_multiply_add(static_cast<float>(p[2]), w, a2);
        if constexpr (C > 3) a3 = fused_multiply_add(static_cast<float>(p[3]), w, a3);
      }
      out[0] = a0;
      if constexpr (C > 1) out[1] = a1;
      if constexpr (C > 2) out[2] = a2;
      if constexpr (C > 3) out[3] = a3;
    }
  }
}

template <typename Src>
void torch_horizontal_any(int channels, const Src* src, int src_width, int row_begin, int row_end,
                          const Taps<float>& taps, float* dst) {
  switch (channels) {
    case 1:
      return torch_horizontal<1>(src, src_width, row_begin, row_end, taps, dst);
    case 2:
      return torch_horizontal<2>(src, src_width, row_begin, row_end, taps, dst);
    case 3:
      return torch_horizontal<3>(src, src_width, row_begin, row_end, taps, dst);
    default:
      return torch_horizontal<4>(src, src_width, row_begin, row_end, taps, dst);
  }
}

template <typename Src>
void torch_vertical(const Src* src, size_t row_size, int row_offset, const Taps<float>& taps, float* dst) {
  const int out_height = static_cast<int>(taps.count.size());
  std::vector<const Src*> rows(taps.ksize);
  for (int yy = 0; yy < out_height; ++yy) {
    const size_t base = static_cast<size_t>(yy) * taps.ksize;
    const int n = taps.count[yy];
    const float* k = &taps.weight[base];
    for (int y = 0; y < n; ++y) rows[y] = src + static_cast<size_t>(taps.index[base + y] - row_offset) * row_size;
    float* out = dst + static_cast<size_t>(yy) * row_size;
    size_t i = 0;
    for (; i + kBlock <= row_size; i += kBlock) {
      float acc[kBlock];
      for (size_t j = 0; j < kBlock; ++j) acc[j] = static_cast<float>(rows[0][i + j]) * k[0];
      for (int y = 1; y < n; ++y) {
        const Src* row = rows[y] + i;
        const float w = k[y];
        for (size_t j = 0; j < kBlock; ++j) acc[j] = fused_multiply_add(static_cast<float>(row[j]), w, acc[j]);
      }
      for (size_t j = 0; j < kBlock; ++j) out[i + j] = acc[j];
    }
    for (; i < row_size; ++i) {
      float acc = static_cast<float>(rows[0][i]) * k[0];
      for (int y = 1; y < n; ++y) acc = fused_multiply_add(static_cast<float>(rows[y][i]), k[y], acc);
      out[i] = acc;
    }
  }
}

// One axis of an area shrink of `source_size` pixels to `size`: output index o averages the
// consecutive source pixels index[begin[o] .. begin[o + 1]) with weights weight[...], made as OpenCV's
// computeResizeAreaTab makes them (same expressions, in double, each weight rounded to float).
struct AreaTaps {
  std::vector<int> begin;
  std::vector<int> index;
  std::vector<float> weight;
};

// Four floats as one SIMD value (GCC and Clang vector extension; SSE on x86-64, NEON on ARM).
typedef float Float4 __attribute__((vector_size(16)));

// The first `channels` values of `sum` as cv::saturate_cast<uchar> makes them: rounded half to
// even, clipped to 0..255.
inline void store_rounded(Float4 sum, int channels, uint8_t* out) {
#if defined(__SSE2__)
  // cvtps2dq rounds as the MXCSR says, half to even by default (cvRound's own instruction); the
  // two saturating packs clip to int16 and then to 0..255.
  const __m128i rounded = _mm_cvtps_epi32(reinterpret_cast<__m128>(sum));
  const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(rounded, rounded), _mm_setzero_si128());
  uint8_t four[16];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(four), bytes);
  std::memcpy(out, four, static_cast<size_t>(channels));
#else
  for (int c = 0; c < channels; ++c) out[c] = static_cast<uint8_t>(std::clamp(std::lrint(sum[c]), 0L, 255L));
#endif
}

AreaTaps area_taps(int source_size, int size) {
  const double scale = 1.0 / (static_cast<double>(size) / source_size);  // cv::resize's scale_x
  AreaTaps taps;
  taps.begin.push_back(0);
  auto add = [&taps](int index, double weight) {
    taps.index.push_back(index);
    taps.weight.push_back(static_cast<float>(weight));
  };
  for (int o = 0; o < size; ++o) {
    const double from = o * scale;
    const double to = from + scale;
    const double cell = std::min(scale, source_size - from);
    const int last = std::min(static_cast<int>(std::floor(to)), source_size - 1);
    const int first = std::min(static_cast<int>(std::ceil(from)), last);
    if (first - from > 1e-3) add(first - 1, (first - from) / cell);
    for (int i = first; i < last; ++i) add(i, 1.0 / cell);
    if (to - last > 1e-3) add(last, std::min(std::min(to - last, 1.0), cell) / cell);
    taps.begin.push_back(static_cast<int>(taps.index.size()));
  }
  return taps;
}

}  // namespace

ImageU8 pil_resize(const ImageU8& image, int width, int height, ResampleFilter filter) {
  check_arguments(image, width, height);
  const int channels = image.channels;
  ImageU8 out;
  out.width = width;
  out.height = height;
  out.channels = channels;
  // Image.resize returns a copy when the size does not change (with the default box).
  if (width == image.width && height == image.height) {
    out.pixels = image.pixels;
    return out;
  }
  out.pixels.resize(static_cast<size_t>(width) * height * channels);
  const bool need_horizontal = width != image.width;
  const bool need_vertical = height != image.height;

  if (!need_vertical) {
    const Taps<int32_t> horizontal = pil_taps(image.width, width, filter);
    pil_horizontal_any(channels, image.pixels.data(), image.width, 0, height, horizontal, out.pixels.data());
    return out;
  }
  const Taps<int32_t> vertical = pil_taps(image.height, height, filter);
  if (!need_horizontal) {
    pil_vertical(image.pixels.data(), static_cast<size_t>(width) * channels, 0, vertical, out.pixels.data());
    return out;
  }
  // Horizontal pass over the source rows the vertical pass reads, to 8 bits, then vertical.
  const Taps<int32_t> horizontal = pil_taps(image.width, width, filter);
  const auto [first_row, end_row] = vertical.span();
  // Uninitialised: every value is written by the horizontal pass.
  const std::unique_ptr<uint8_t[]> temp(new uint8_t[static_cast<size_t>(end_row - first_row) * width * channels]);
  pil_horizontal_any(channels, image.pixels.data(), image.width, first_row, end_row, horizontal, temp.get());
  pil_vertical(temp.get(), static_cast<size_t>(width) * channels, first_row, vertical, out.pixels.data());
  return out;
}

std::vector<float> torch_resize(const ImageU8& image, int width, int height, ResampleFilter filter, bool antialias) {
  check_arguments(image, width, height);
  const int channels = image.channels;
  std::vector<float> out(static_cast<size_t>(width) * height * channels);
  // A pass whose size does not change is the identity in every mode (weights exactly 1 and 0), so it
  // is skipped as in Pillow.
  const bool need_horizontal = width != image.width;
  const bool need_vertical = height != image.height;
  const size_t out_row = static_cast<size_t>(width) * channels;

  if (!need_horizontal && !need_vertical) {
    std::copy(image.pixels.begin(), image.pixels.end(), out.begin());
    return out;
  }
  if (!need_vertical) {
    const Taps<float> horizontal = torch_taps(image.width, width, filter, antialias);
    torch_horizontal_any(channels, image.pixels.data(), image.width, 0, height, horizontal, out.data());
    return out;
  }
  const Taps<float> vertical = torch_taps(image.height, height, filter, antialias);
  if (!need_horizontal) {
    torch_vertical(image.pixels.data(), out_row, 0, vertical, out.data());
    return out;
  }
  const Taps<float> horizontal = torch_taps(image.width, width, filter, antialias);
  const auto [first_row, end_row] = vertical.span();
  const std::unique_ptr<float[]> temp(new float[static_cast<size_t>(end_row - first_row) * out_row]);
  torch_horizontal_any(channels, image.pixels.data(), image.width, first_row, end_row, horizontal, temp.get());
  torch_vertical(temp.get(), out_row, first_row, vertical, out.data());
  return out;
}

void area_shrink(const ImageU8View& image, int left, int top, int width, int height, int out_width, int out_height,
                 uint8_t* out) {
  const int channels = image.channels;
  if (!image.pixels || !out || image.width < 1 || image.height < 1 || channels < 1 || channels > 4 ||
      image.row_bytes < static_cast<size_t>(image.width) * channels || out_width < 1 || out_height < 1 ||
      out_width > width || out_height > height) {
    throw std::invalid_argument("area_shrink: invalid image view, or " + std::to_string(width) + " x " +
                                std::to_string(height) + " to " + std::to_string(out_width) + " x " +
                                std::to_string(out_height));
  }
  const AreaTaps across = area_taps(width, out_width);
  const AreaTaps down = area_taps(height, out_height);
  // The rectangle's columns that lie inside the image; the others stay 0 in `row`.
  const int inside_begin = std::clamp(-left, 0, width);
  const int inside_end = std::clamp(image.width - left, inside_begin, width);
  const size_t inside_values = static_cast<size_t>(inside_end - inside_begin) * channels;
  // Four floats past the last pixel: the horizontal pass reads 4 values per pixel, whatever
  // `channels`, and uses the first `channels`.
  std::vector<float> row(static_cast<size_t>(width) * channels + 4);
  std::vector<const uint8_t*> sources;
  std::vector<float> weights;
  for (int oy = 0; oy < out_height; ++oy) {
    // Vertical first: one output row's weighted sum of whole source rows (vectorised), rows added
    // two at a time (half the loads and stores of the sums).
    std::fill(row.begin(), row.end(), 0.0f);
    sources.clear();
    weights.clear();
    for (int t = down.begin[oy]; t < down.begin[oy + 1] && inside_values > 0; ++t) {
      const int y = top + down.index[t];
      if (y < 0 || y >= image.height) continue;
      sources.push_back(image.pixels + y * image.row_bytes + static_cast<size_t>(left + inside_begin) * channels);
      weights.push_back(down.weight[t]);
    }
    float* const acc = row.data() + static_cast<size_t>(inside_begin) * channels;
    size_t k = 0;
    for (; k + 1 < sources.size(); k += 2) {
      const uint8_t* a = sources[k];
      const uint8_t* b = sources[k + 1];
      const float wa = weights[k], wb = weights[k + 1];
      for (size_t i = 0; i < inside_values; ++i) {
        acc[i] += wa * static_cast<float>(a[i]) + wb * static_cast<float>(b[i]);
      }
    }
    if (k < sources.size()) {
      const uint8_t* a = sources[k];
      const float wa = weights[k];
      for (size_t i = 0; i < inside_values; ++i) acc[i] += wa * static_cast<float>(a[i]);
    }
    // Then across: an output pixel's taps are consecutive source pixels, summed with all of a
    // pixel's channels in one 4-float vector (one load and one multiply-add per tap instead of one
    // per channel).
    uint8_t* dst = out + static_cast<size_t>(oy) * out_width * channels;
    for (int ox = 0; ox < out_width; ++ox) {
      Float4 sum = {0, 0, 0, 0};
      const float* pixel = row.data() + static_cast<size_t>(across.index[across.begin[ox]]) * channels;
      for (int t = across.begin[ox]; t < across.begin[ox + 1]; ++t, pixel += channels) {
        Float4 values;
        std::memcpy(&values, pixel, sizeof values);
        sum += across.weight[t] * values;
      }
      store_rounded(sum, channels, dst + ox * channels);
    }
  }
}

}  // namespace abaw
