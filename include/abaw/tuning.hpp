// Post-processing tuned on validation data, as competition teams do by hand: per-AU thresholds,
// the EXPR mode-filter width and the VA mean-filter width, chosen from the raw scores of a
// validation run to maximise the task's metric.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "abaw/manifest.hpp"
#include "abaw/metrics.hpp"

namespace abaw {

// The outcome of tuning one task.
struct TuningResult {
  Task task = Task::kAU;
  Evaluation before;        // with the current settings
  Evaluation after;         // with the tuned settings
  nlohmann::json fragment;  // {"tasks": {"au": {"threshold": [...]}}}: a manifest patch
  std::string report;       // readable: what changed and the gain
};

// The widths tried for filters (0 = off).
const std::vector<int>& mode_filter_grid();
const std::vector<int>& mean_filter_grid();

// Tunes `current` (the task's settings now: manifest values, or defaults) on the raw scores in
// `raw_folder` (`<video>.csv` as written by `run`) against `annotation_folder`. Every annotated
// video needs a raw file. AU: each AU's threshold from 0.01 ... 0.99 maximising its F1 (after
// the current mean filter). EXPR: mode_filter from mode_filter_grid(). VA: mean_filter from
// mean_filter_grid().
TuningResult tune(const TaskConfig& current, const std::filesystem::path& raw_folder,
                  const std::filesystem::path& annotation_folder);

}  // namespace abaw
