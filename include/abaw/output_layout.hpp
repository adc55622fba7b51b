// Where `run` and `merge` write, under the output folder: the one place that spells the layout
// (README "Outputs"). Per-video paths take a VideoName, so every file written for a video stays
// in its folder whatever a frame list or annotation file names.
#pragma once

#include <filesystem>

#include "abaw/frame_names.hpp"
#include "abaw/tasks.hpp"

namespace abaw {

struct OutputLayout {
  std::filesystem::path root;  // --output

  // `submission/<TASK>.txt`.
  std::filesystem::path submission(Task task) const;
  // `raw/<TASK>/`: one raw-score file per video.
  std::filesystem::path raw_scores_folder(Task task) const;
  // `raw/<TASK>/<video>.csv`.
  std::filesystem::path raw_scores(Task task, const VideoName& video) const;
  // `state/<video>.done`: written last for a video; holds the key --resume compares.
  std::filesystem::path done_marker(const VideoName& video) const;
  // `state/<file>.people.json`: what the people pass (`run --videos --faces N`) found in the
  // video file named `file`, with its key, for --resume.
  std::filesystem::path people_pass(const VideoName& file) const;
  // `run.json`.
  std::filesystem::path summary() const;
};

}  // namespace abaw
