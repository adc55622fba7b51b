#include "abaw/windows.hpp"

#include <algorithm>

#include "abaw/error.hpp"

namespace abaw {

std::vector<Window> plan_windows(long frames, const SequenceConfig& sequence) {
  std::vector<Window> windows;
  if (frames <= 0) return windows;
  const long w = sequence.window, s = sequence.stride;
  if (frames <= w) return {Window{0, frames}};
  if (sequence.merge == Merge::kConcatenate) {
    for (long begin = 0; begin < frames; begin += w) windows.push_back({begin, std::min(begin + w, frames)});
    return windows;
  }
  long begin = 0;
  for (; begin + w <= frames; begin += s) windows.push_back({begin, begin + w});
  // A last full-length window aligned to the end, so the tail is not predicted from a stub.
  if (windows.back().end < frames) windows.push_back({frames - w, frames});
  return windows;
}

WindowMerger::WindowMerger(long frames, int width)
    : frames_(frames), width_(width), sums_(static_cast<size_t>(frames) * width, 0.0), counts_(frames, 0) {}

void WindowMerger::add(const Window& window, const float* scores) {
  for (long t = window.begin; t < window.end; ++t) {
    const float* row = scores + (t - window.begin) * width_;
    double* sum = &sums_[static_cast<size_t>(t) * width_];
    for (int k = 0; k < width_; ++k) sum[k] += row[k];
    ++counts_[t];
  }
}

std::vector<float> WindowMerger::finish() const {
  std::vector<float> out(sums_.size());
  for (long t = 0; t < frames_; ++t) {
    if (counts_[t] == 0) {
      throw Error(ErrorKind::kRuntime, "internal: frame " + std::to_string(t + 1) + " is in no window");
    }
    for (int k = 0; k < width_; ++k) {
      const size_t i = static_cast<size_t>(t) * width_ + k;
      out[i] = static_cast<float>(sums_[i] / counts_[t]);
    }
  }
  return out;
}

std::vector<std::vector<CropSpan>> plan_encoder_batches(const std::vector<size_t>& crop_counts, size_t batch_size,
                                                        bool pack) {
  if (batch_size == 0) throw Error(ErrorKind::kUsage, "--batch-size must be at least 1");
  std::vector<std::vector<CropSpan>> batches;
  std::vector<CropSpan> batch;
  size_t filled = 0;
  for (size_t video = 0; video < crop_counts.size(); ++video) {
    for (size_t begin = 0; begin < crop_counts[video];) {
      const size_t end = std::min(crop_counts[video], begin + (batch_size - filled));
      batch.push_back({video, begin, end});
      filled += end - begin;
      begin = end;
      if (filled == batch_size || (!pack && end == crop_counts[video])) {
        batches.push_back(std::move(batch));
        batch.clear();
        filled = 0;
      }
    }
  }
  if (!batch.empty()) batches.push_back(std::move(batch));
  return batches;
}

}  // namespace abaw
