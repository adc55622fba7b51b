// The ABAW metrics, pooled over all evaluated frames of all videos (ABAW.md §4): CCC with
// population moments for VA, F1 averaged over all 8 classes for EXPR and over 12 AUs for AU.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "abaw/submission.hpp"
#include "abaw/tasks.hpp"

namespace abaw {

// Concordance correlation coefficient with population (1/N) moments. 0 when undefined
// (no frames, or both series constant and equal), never NaN.
double concordance_correlation(const std::vector<double>& predictions, const std::vector<double>& labels);

// Counts of one binary decision and its F1 = 2TP / (2TP + FP + FN), 0 when the denominator is 0.
struct F1Counts {
  long true_positives = 0;
  long false_positives = 0;
  long false_negatives = 0;
  double f1() const;
};

// One line of an evaluation: a VA dimension (CCC), an EXPR class or an AU (F1).
struct MetricPart {
  std::string name;
  double score = 0;
  long frames = 0;  // frames this part was scored on
  F1Counts counts;  // EXPR / AU only
};

// The score of one task over an annotation folder.
struct Evaluation {
  Task task = Task::kVA;
  double score = 0;
  std::vector<MetricPart> parts;
  long videos = 0;
  long frames_evaluated = 0;           // frames with a valid label (any AU valid, for AU)
  long frames_excluded = 0;            // frames whose label is invalid (-5 / -1)
  long frames_without_prediction = 0;  // only with allow_missing
  long videos_not_annotated = 0;       // predicted videos absent from the annotations (ignored)
  // With per_video: each annotated video scored alone with the same metric (its own frames only),
  // worst score first; a video without a valid label is left out.
  std::vector<std::pair<std::string, Evaluation>> per_video;
};

// Scores `predictions` against every `<video>.txt` in `annotation_folder`. A valid annotated
// frame without a prediction is an Error(kInput) naming video and frame, unless `allow_missing`,
// which leaves it out and counts it. `per_video` also fills Evaluation::per_video.
Evaluation evaluate(const PredictionSet& predictions, const std::filesystem::path& annotation_folder,
                    bool allow_missing, bool per_video = false);

// Lower-level: score from pooled per-frame predictions and labels (row-major, width per task as
// in submissions / annotation files; invalid labels already removed for VA and EXPR, -1 allowed
// per AU).
Evaluation score_frames(Task task, const std::vector<float>& predictions, const std::vector<float>& labels);

// A readable table: score, then per-dimension / class / AU figures and frame counts.
std::string format_evaluation(const Evaluation& evaluation);

// Evaluation::per_video as a table, worst first: video, score, frames, and the per-dimension /
// class / AU scores.
std::string format_per_video(const Evaluation& evaluation);

// The same as JSON ("per_video": a list, worst first, when evaluated per video).
nlohmann::json evaluation_to_json(const Evaluation& evaluation);

}  // namespace abaw
