// Per-frame score arithmetic after the heads: missing-frame interpolation, mean and mode
// filters, and the final labels (VA clip, EXPR argmax, AU thresholds). Plain arrays, no torch.
#pragma once

#include <cstdint>
#include <vector>

#include "abaw/manifest.hpp"

namespace abaw {

// Row-major frames x width scores of one task for one video.
struct ScoreMatrix {
  long frames = 0;
  int width = 0;
  std::vector<float> values;

  float* row(long t) { return values.data() + static_cast<size_t>(t) * width; }
  const float* row(long t) const { return values.data() + static_cast<size_t>(t) * width; }
};

// For each frame 0..present.size()-1, the index of the nearest frame with present[i] != 0 (the
// earlier one on a tie). Requires at least one present frame.
std::vector<long> nearest_present(const std::vector<uint8_t>& present);

// Expands scores computed for the present frames only (in order) to all frames: linear
// interpolation between the present neighbours, the nearest one copied before the first and
// after the last. `compact.frames` must equal the number of present frames (>= 1).
ScoreMatrix interpolate_missing(const ScoreMatrix& compact, const std::vector<uint8_t>& present);

// Centred moving average over frames i - w/2 ... i - w/2 + w - 1, truncated at the ends.
// Width 0 or 1 returns the input unchanged.
ScoreMatrix mean_filter(const ScoreMatrix& scores, int width);

// Index of the largest score per frame; ties go to the lowest index.
std::vector<int> argmax_labels(const ScoreMatrix& scores);

// Centred majority filter (same window as mean_filter); ties go to the lowest label.
std::vector<int> mode_filter(const std::vector<int>& labels, int width, int classes);

// The post-processing used without a model set (`merge`, `tune`, `report`): argmax over the 8
// classes in ABAW order, AU threshold 0.5, no filters.
TaskConfig plain_task_config(Task task);

// A task's final per-frame values for the submission: VA clipped floats (2 per frame), EXPR one
// label per frame, AU 12 labels per frame. Stored as floats; labels are whole numbers.
ScoreMatrix finalize_predictions(const TaskConfig& config, const ScoreMatrix& raw);

}  // namespace abaw
