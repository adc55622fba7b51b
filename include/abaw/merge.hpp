// `merge`: assemble submission files from the raw per-video scores of several run outputs, for
// shards of one job (each video in one output) and for ensembles (a video in several outputs:
// weighted mean of the raw scores), then the post-processing of a model set.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <vector>

#include "abaw/tasks.hpp"
#include "abaw/video_index.hpp"

namespace abaw {

struct MergeOptions {
  std::vector<std::filesystem::path> inputs;  // run output folders (each with raw/<TASK>/)
  std::vector<double> weights;                // one per input; empty = all 1
  std::filesystem::path output;
  RowsOptions rows;                                // no tasks: every task some input has raw scores for
  std::optional<std::filesystem::path> model_set;  // post-processing; default: plain (0.5, no filters)
  std::optional<std::filesystem::path> manifest_patch;
};

struct MergeResult {
  std::map<Task, std::filesystem::path> submissions;
};

// Merges and writes `<output>/raw/<TASK>/<video>.csv` (the weighted mean) and
// `<output>/submission/<TASK>.txt`. Every video a task's rows need must have raw scores in at
// least one input, with the same frame count in all of them; otherwise Error(kInput) names it.
MergeResult merge_runs(const MergeOptions& options);

}  // namespace abaw
