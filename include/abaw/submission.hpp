// Reading predictions back: ABAW 5/6/8 single-file submissions, ABAW 1-3 per-video files and the
// tool's own raw scores; and checking a submission against its frame list before upload.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "abaw/annotations.hpp"
#include "abaw/postprocess.hpp"
#include "abaw/tasks.hpp"

namespace abaw {

// Columns a submission row carries after the image location: 2 (VA), 1 (EXPR), 12 (AU).
int submission_width(Task task);

// Parses the value fields of one prediction line (already split at commas) into `out`
// (submission_width(task) floats). Returns "" when valid, else what is wrong, e.g.
// "value 2 ('1.5') is out of range [-1, 1]". `kind` receives "columns", "value" or "range".
std::string parse_prediction_values(Task task, const std::vector<std::string>& fields, float* out, std::string* kind);

// The predictions one file gives for one video: submission_width values per listed frame (VA
// values, EXPR class indices, AU 0/1 labels). Sparse on purpose: memory follows the rows read,
// not the largest frame number a file names (one "v/9999999.jpg" must not cost a row per frame).
struct VideoPredictions {
  int width = 0;
  std::unordered_map<long, size_t> row_of_frame;  // 1-based frame -> row in `values`
  std::vector<float> values;                      // rows x width, in reading order

  // The values for 1-based `frame`, or nullptr when the file has no row for it.
  const float* find(long frame) const {
    auto it = row_of_frame.find(frame);
    return it == row_of_frame.end() ? nullptr : values.data() + it->second * static_cast<size_t>(width);
  }
  // Frames with a prediction.
  size_t size() const { return row_of_frame.size(); }
};

// Per-frame predictions of one task, per video.
struct PredictionSet {
  Task task = Task::kVA;
  std::string origin;
  std::map<std::string, VideoPredictions> videos;
};

// Reads predictions from a single-file submission, or from a folder of per-video files: ABAW 1-3
// files (`<video>.txt`, annotation header, one line per frame) or raw scores written by `run`
// (`<video>.csv`, header `frame,has_crop,...`; EXPR argmax, AU >= 0.5, VA clipped). Throws
// Error(kInput) naming file and line for anything malformed or duplicated.
PredictionSet read_predictions(const std::filesystem::path& path, Task task);

// One problem `check` found.
struct SubmissionProblem {
  std::string kind;  // header, columns, value, range, unknown_row, duplicate_row, order, missing_row
  long line = 0;     // in the submission (in the frame list for missing_row)
  std::string message;
};

// The result of checking a submission.
struct SubmissionCheck {
  long rows = 0;
  std::vector<std::string> warnings;
  std::vector<SubmissionProblem> problems;  // all of them, in file order per kind
  bool valid() const { return problems.empty(); }
};

// Checks `submission` against `frame_list`: exact header (a pandas-quoted EXPR header is only a
// warning), every row of the frame list present once and in order, no extra rows, values that
// parse, are finite and in range.
SubmissionCheck check_submission(const std::filesystem::path& submission, Task task, const FrameList& frame_list);

}  // namespace abaw
