#include "abaw/tuning.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/postprocess.hpp"
#include "abaw/raw_scores.hpp"
#include "abaw/submission.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

// One validation video: raw scores and labels, frame by frame.
struct ValidationVideo {
  ScoreMatrix raw;
  AnnotationFile labels;
};

std::vector<ValidationVideo> load_validation(Task task, const fs::path& raw_folder, const fs::path& annotation_folder) {
  std::vector<ValidationVideo> videos;
  const std::vector<fs::path> files = annotation_files(annotation_folder);
  for (const auto& file : files) {
    const VideoName name = video_name_of_file(file);
    const fs::path raw_file = video_path(raw_folder, name, ".csv");
    if (!fs::exists(raw_file)) {
      throw Error(ErrorKind::kInput, "no raw scores for annotated video '" + name.str() + "'", raw_file.string());
    }
    ValidationVideo video{read_raw_scores(raw_file, task), read_annotation_file(file, task)};
    if (video.raw.frames < video.labels.frames) {
      throw Error(ErrorKind::kInput,
                  "raw scores cover " + std::to_string(video.raw.frames) + " frames, the annotation has " +
                      std::to_string(video.labels.frames),
                  raw_file.string());
    }
    videos.push_back(std::move(video));
  }
  return videos;
}

// Scores `config` exactly as `run` would post-process, pooled over all videos.
Evaluation score_config(const TaskConfig& config, const std::vector<ValidationVideo>& videos) {
  const int width = submission_width(config.task);
  std::vector<float> predictions, labels;
  for (const auto& video : videos) {
    const ScoreMatrix final_values = finalize_predictions(config, video.raw);
    for (long f = 0; f < video.labels.frames; ++f) {
      const float* label = &video.labels.values[static_cast<size_t>(f) * width];
      if (label_is_invalid(config.task, label)) continue;
      predictions.insert(predictions.end(), final_values.row(f), final_values.row(f) + width);
      labels.insert(labels.end(), label, label + width);
    }
  }
  Evaluation e = score_frames(config.task, predictions, labels);
  e.videos = static_cast<long>(videos.size());
  return e;
}

std::vector<float> threshold_grid() {
  std::vector<float> grid;
  for (int k = 1; k <= 99; ++k) grid.push_back(static_cast<float>(k / 100.0));
  return grid;
}

// For each AU, the grid threshold with the best F1 on the (mean-filtered) probabilities; ties
// keep the threshold closest to the current one, so tuning never moves without a gain.
std::vector<float> tune_au_thresholds(const TaskConfig& current, const std::vector<ValidationVideo>& videos) {
  const std::vector<float> grid = threshold_grid();
  const size_t steps = grid.size();
  // positives[a][k] / negatives[a][k]: frames whose probability clears exactly the first k
  // thresholds, so one pass over the frames serves every threshold.
  std::vector<std::vector<long>> positives(12, std::vector<long>(steps + 1, 0)), negatives = positives;
  for (const auto& video : videos) {
    const ScoreMatrix probabilities = mean_filter(video.raw, current.mean_filter);
    for (long f = 0; f < video.labels.frames; ++f) {
      for (int a = 0; a < 12; ++a) {
        const float label = video.labels.values[static_cast<size_t>(f) * 12 + a];
        if (label < 0) continue;
        const float p = probabilities.row(f)[a];
        const size_t cleared = static_cast<size_t>(std::upper_bound(grid.begin(), grid.end(), p) - grid.begin());
        (label > 0.5f ? positives : negatives)[a][cleared]++;
      }
    }
  }
  std::vector<float> thresholds(12);
  for (int a = 0; a < 12; ++a) {
    // Frames predicted positive at threshold k: those clearing at least k + 1 thresholds.
    long total_positive = 0;
    for (long c : positives[a]) total_positive += c;
    long tp = total_positive, fp = 0;
    for (long c : negatives[a]) fp += c;
    double best_f1 = -1;
    float best = current.thresholds[a];
    for (size_t k = 0; k < steps; ++k) {
      tp -= positives[a][k];
      fp -= negatives[a][k];
      const long fn = total_positive - tp;
      const long denominator = 2 * tp + fp + fn;
      const double f1 = denominator > 0 ? 2.0 * tp / denominator : 0.0;
      const bool closer = std::fabs(grid[k] - current.thresholds[a]) < std::fabs(best - current.thresholds[a]);
      if (f1 > best_f1 + 1e-12 || (std::fabs(f1 - best_f1) <= 1e-12 && closer)) {
        best_f1 = f1;
        best = grid[k];
      }
    }
    thresholds[a] = best;
  }
  return thresholds;
}

int tune_width(TaskConfig config, int TaskConfig::*field, const std::vector<int>& grid,
               const std::vector<ValidationVideo>& videos, double current_score) {
  int best = config.*field;
  double best_score = current_score;
  for (int width : grid) {
    config.*field = width;
    const double score = score_config(config, videos).score;
    if (score > best_score + 1e-12) {
      best_score = score;
      best = width;
    }
  }
  return best;
}

std::string format_gain(const Evaluation& before, const Evaluation& after) {
  char line[128];
  std::snprintf(line, sizeof line, "%s score: %.6f -> %.6f (%+.6f)\n", task_name(before.task), before.score,
                after.score, after.score - before.score);
  return line;
}

}  // namespace

const std::vector<int>& mode_filter_grid() {
  static const std::vector<int> grid{0, 3, 5, 9, 15, 21, 31, 41, 61, 81, 121};
  return grid;
}

const std::vector<int>& mean_filter_grid() {
  static const std::vector<int> grid{0, 3, 5, 9, 15, 21, 31, 51, 101, 151};
  return grid;
}

TuningResult tune(const TaskConfig& current, const fs::path& raw_folder, const fs::path& annotation_folder) {
  const std::vector<ValidationVideo> videos = load_validation(current.task, raw_folder, annotation_folder);
  TuningResult result;
  result.task = current.task;
  result.before = score_config(current, videos);
  TaskConfig tuned = current;
  const std::string key = task_key(current.task);
  char line[160];
  switch (current.task) {
    case Task::kAU: {
      tuned.thresholds = tune_au_thresholds(current, videos);
      // Written as two-decimal numbers (0.27, not 0.27000001): they read back as the same floats.
      std::vector<double> written;
      for (float t : tuned.thresholds) written.push_back(std::round(t * 100.0) / 100.0);
      result.fragment["tasks"][key]["threshold"] = written;
      break;
    }
    case Task::kEXPR:
    case Task::kVA: {
      // EXPR tunes its label (mode) filter, VA its score (mean) filter; the search is the same.
      const bool expr = current.task == Task::kEXPR;
      int TaskConfig::*const width = expr ? &TaskConfig::mode_filter : &TaskConfig::mean_filter;
      const char* name = expr ? "mode_filter" : "mean_filter";
      tuned.*width =
          tune_width(current, width, expr ? mode_filter_grid() : mean_filter_grid(), videos, result.before.score);
      result.fragment["tasks"][key][name] = tuned.*width;
      std::snprintf(line, sizeof line, "%s: %d -> %d\n", name, current.*width, tuned.*width);
      result.report += line;
      break;
    }
  }
  result.after = score_config(tuned, videos);
  if (current.task == Task::kAU) {
    std::snprintf(line, sizeof line, "  %-6s %10s %10s %10s %10s\n", "AU", "threshold", "F1", "tuned", "F1");
    result.report += line;
    for (int a = 0; a < 12; ++a) {
      std::snprintf(line, sizeof line, "  %-6s %10.2f %10.6f %10.2f %10.6f\n", task_columns(Task::kAU)[a].c_str(),
                    current.thresholds[a], result.before.parts[a].score, tuned.thresholds[a],
                    result.after.parts[a].score);
      result.report += line;
    }
  }
  result.report += format_gain(result.before, result.after);
  return result;
}

}  // namespace abaw
