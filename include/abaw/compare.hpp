// `compare RUN_A RUN_B`: how far two runs' predictions are apart on what both predicted, e.g. fp32
// against bf16, CPU against CUDA, or a model against its re-export. The raw scores
// (raw/<TASK>/<video>.csv) give the score differences; the submissions, each made with its own
// run's post-processing, give the label agreement.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "abaw/tasks.hpp"

namespace abaw {

// How far one video's raw scores are apart.
struct VideoDifference {
  std::string video;
  long frames = 0;      // frames compared
  double mean_abs = 0;  // mean |a - b| over every score of those frames
  double max_abs = 0;
};

// One task's comparison.
struct TaskComparison {
  Task task = Task::kVA;
  long videos = 0;         // videos with raw scores in both runs
  long videos_only_a = 0;  // videos with raw scores in one run only (not compared)
  long videos_only_b = 0;
  long frames = 0;          // frames compared: those both runs had a crop for
  long frames_skipped = 0;  // frames of compared videos where a run had no crop (filled, not compared)
  double mean_abs = 0;      // mean |a - b| over every score of the compared frames
  double max_abs = 0;
  std::vector<double> ccc;             // VA: the CCC between the runs' valence, and arousal, over the compared frames
  std::vector<VideoDifference> worst;  // the videos with the largest mean |a - b|, largest first
  // Labels, from the two submission files (rows both name); rows == 0 when a run has no submission.
  long rows = 0;
  double label_agreement = 0;        // EXPR: rows with the same class; AU: (row, AU) pairs equal
  std::vector<double> au_agreement;  // AU: per AU, in ABAW order
  bool labels_compared() const { return rows > 0; }
};

// Compares every task both runs have raw scores for. `worst_count` bounds TaskComparison::worst.
// Throws Error(kInput) naming the file when a raw-score file or submission is malformed, when a
// video's two raw-score files have different frame counts, or when the runs share no task.
std::vector<TaskComparison> compare_runs(const std::filesystem::path& run_a, const std::filesystem::path& run_b,
                                         int worst_count = 5);

// A table for the terminal.
std::string format_comparison(const std::vector<TaskComparison>& comparison);

// The same as JSON: one object per task name.
nlohmann::json comparison_to_json(const std::vector<TaskComparison>& comparison);

}  // namespace abaw
