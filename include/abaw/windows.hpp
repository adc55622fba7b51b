// How a video of T frames is cut into head windows, and how overlapping window scores merge.
#pragma once

#include <vector>

#include "abaw/manifest.hpp"

namespace abaw {

// Frames [begin, end), 0-based.
struct Window {
  long begin = 0;
  long end = 0;
  long size() const { return end - begin; }
};

// The windows for T frames (T >= 1) under `sequence` (validated): see models/README.md, `merge`.
std::vector<Window> plan_windows(long frames, const SequenceConfig& sequence);

// Accumulates per-window scores and returns each frame's mean over the windows covering it.
// With non-overlapping windows this is plain concatenation.
class WindowMerger {
 public:
  WindowMerger(long frames, int width);

  // `scores` holds window.size() rows of `width` floats.
  void add(const Window& window, const float* scores);

  // Row-major frames x width means. Every frame must have been covered.
  std::vector<float> finish() const;

 private:
  long frames_;
  int width_;
  std::vector<double> sums_;
  std::vector<int> counts_;
};

}  // namespace abaw
