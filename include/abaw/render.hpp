// `render`: a video with what a run predicted drawn on every frame: the face box `crop` found,
// the predicted expression with its probability, the valence-arousal point on a small
// circumplex and the AU probabilities as bars, for watching a model at work.
#pragma once

#include <filesystem>

namespace abaw {

struct RenderOptions {
  std::filesystem::path video;   // the original video
  std::filesystem::path boxes;   // `crop`'s <video>.boxes.csv for it
  std::filesystem::path run;     // a run over that video's crops (raw/<TASK>/<video>.csv)
  std::filesystem::path output;  // the overlay video (.mp4: MPEG-4 Part 2, .avi: MJPEG)
};

struct RenderResult {
  long frames = 0;     // frames written (every frame decoded)
  double fps = 0;      // the input's frame rate, kept
  long predicted = 0;  // frames the run's raw scores cover
};

// Draws every decoded frame of `video` and writes it, at the input's size and frame rate, to
// `output` (atomically: a temporary file renamed when complete). The video's name (the file's
// stem) picks its raw scores in the run; labels use the post-processing of the run's model set
// (see run_post_processing). Throws Error(kInput) naming the file for an unreadable video, a
// malformed boxes line, or a run without raw scores for the video; Error(kOutput) when no
// encoder can write `output`.
RenderResult render_overlay(const RenderOptions& options);

}  // namespace abaw
