// How work is cut up: a video's frames into head windows (and how overlapping window scores
// merge), and the crops of all videos into encoder batches.
#pragma once

#include <cstddef>
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

// Crops [begin, end) of video `video`, as one piece of an encoder batch.
struct CropSpan {
  size_t video = 0;
  size_t begin = 0;
  size_t end = 0;
  size_t size() const { return end - begin; }
};

// Cuts the crops of videos 0..N-1 (`crop_counts[v]` each; 0 skips a video) into encoder batches
// of at most `batch_size` crops, in video and crop order.
//
// Per video (`pack` false): each video's batches are [0, B), [B, 2B), ..., so a crop's batch
// shape and position depend only on its own video. BLAS and oneDNN results vary in the last bits
// with both (measured for ViT-B/16 on the CPU), and this is what lets shards, resumed
// runs and cached features reproduce one run's files byte for byte. The price is one short
// batch per video.
//
// Packed (`pack` true): every batch but the last is full, continuing into the next video, so
// short videos do not leave batches half empty (a GPU typically takes about as long for a short
// batch as for a full one). A crop's features can then differ in the last bits between runs over different
// video sets (shards, resumes).
std::vector<std::vector<CropSpan>> plan_encoder_batches(const std::vector<size_t>& crop_counts, size_t batch_size,
                                                        bool pack);

}  // namespace abaw
