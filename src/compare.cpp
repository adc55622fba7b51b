#include "abaw/compare.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/metrics.hpp"
#include "abaw/output_layout.hpp"
#include "abaw/raw_scores.hpp"
#include "abaw/submission.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

// Label agreement over the rows both submissions name.
void compare_labels(const fs::path& a, const fs::path& b, TaskComparison& out) {
  const PredictionSet labels_a = read_predictions(a, out.task), labels_b = read_predictions(b, out.task);
  long equal = 0;
  std::vector<long> au_equal(12, 0);
  for (const auto& [video, rows_a] : labels_a.videos) {
    auto other = labels_b.videos.find(video);
    if (other == labels_b.videos.end()) continue;
    for (const auto& [frame, row] : rows_a.row_of_frame) {
      const float* value_b = other->second.find(frame);
      if (!value_b) continue;
      const float* value_a = rows_a.values.data() + row * static_cast<size_t>(rows_a.width);
      ++out.rows;
      if (out.task == Task::kEXPR) {
        equal += value_a[0] == value_b[0];
      } else {
        for (int au = 0; au < 12; ++au) {
          const bool same = value_a[au] == value_b[au];
          equal += same;
          au_equal[au] += same;
        }
      }
    }
  }
  if (out.rows == 0) return;
  if (out.task == Task::kEXPR) {
    out.label_agreement = static_cast<double>(equal) / out.rows;
  } else {
    out.label_agreement = static_cast<double>(equal) / (12.0 * out.rows);
    for (long count : au_equal) out.au_agreement.push_back(static_cast<double>(count) / out.rows);
  }
}

TaskComparison compare_task(const fs::path& run_a, const fs::path& run_b, Task task,
                            const std::map<std::string, fs::path>& files_a,
                            const std::map<std::string, fs::path>& files_b, int worst_count) {
  TaskComparison out;
  out.task = task;
  const int width = task_width(task);
  std::vector<std::vector<double>> va_a(2), va_b(2);
  double sum_abs = 0;
  for (const auto& [video, file_a] : files_a) {
    auto match = files_b.find(video);
    if (match == files_b.end()) {
      ++out.videos_only_a;
      continue;
    }
    std::vector<uint8_t> crops_a, crops_b;
    const ScoreMatrix a = read_raw_scores(file_a, task, &crops_a);
    const ScoreMatrix b = read_raw_scores(match->second, task, &crops_b);
    if (a.frames != b.frames) {
      throw Error(ErrorKind::kInput,
                  "has " + std::to_string(b.frames) + " frames, but " + file_a.string() + " has " +
                      std::to_string(a.frames) + ": the runs did not predict the same video",
                  match->second.string());
    }
    ++out.videos;
    VideoDifference difference{video, 0, 0, 0};
    double video_sum = 0;
    for (long t = 0; t < a.frames; ++t) {
      if (!crops_a[t] || !crops_b[t]) {
        ++out.frames_skipped;
        continue;
      }
      ++difference.frames;
      for (int c = 0; c < width; ++c) {
        const double d = std::fabs(static_cast<double>(a.row(t)[c]) - b.row(t)[c]);
        video_sum += d;
        difference.max_abs = std::max(difference.max_abs, d);
      }
      if (task == Task::kVA) {
        for (int c = 0; c < 2; ++c) {
          va_a[c].push_back(a.row(t)[c]);
          va_b[c].push_back(b.row(t)[c]);
        }
      }
    }
    out.frames += difference.frames;
    sum_abs += video_sum;
    out.max_abs = std::max(out.max_abs, difference.max_abs);
    if (difference.frames > 0) {
      difference.mean_abs = video_sum / (static_cast<double>(difference.frames) * width);
      out.worst.push_back(difference);
    }
  }
  for (const auto& [video, file] : files_b) out.videos_only_b += files_a.count(video) == 0;
  if (out.frames > 0) out.mean_abs = sum_abs / (static_cast<double>(out.frames) * width);
  if (task == Task::kVA) {
    for (int c = 0; c < 2; ++c) out.ccc.push_back(concordance_correlation(va_a[c], va_b[c]));
  }
  std::stable_sort(out.worst.begin(), out.worst.end(),
                   [](const VideoDifference& x, const VideoDifference& y) { return x.mean_abs > y.mean_abs; });
  if (out.worst.size() > static_cast<size_t>(std::max(worst_count, 0))) out.worst.resize(std::max(worst_count, 0));

  const fs::path submission_a = OutputLayout{run_a}.submission(task),
                 submission_b = OutputLayout{run_b}.submission(task);
  std::error_code ec_a, ec_b;
  if (task != Task::kVA && fs::is_regular_file(submission_a, ec_a) && fs::is_regular_file(submission_b, ec_b)) {
    compare_labels(submission_a, submission_b, out);
  }
  return out;
}

}  // namespace

std::vector<TaskComparison> compare_runs(const fs::path& run_a, const fs::path& run_b, int worst_count) {
  for (const fs::path& run : {run_a, run_b}) {
    std::error_code ec;
    if (!fs::is_directory(run, ec)) throw Error(ErrorKind::kInput, "not a run output folder", run.string());
  }
  std::vector<TaskComparison> comparison;
  for (Task task : all_tasks()) {
    const auto files_a = raw_score_files(run_a, task), files_b = raw_score_files(run_b, task);
    if (files_a.empty() || files_b.empty()) continue;
    comparison.push_back(compare_task(run_a, run_b, task, files_a, files_b, worst_count));
  }
  if (comparison.empty()) {
    throw Error(ErrorKind::kInput,
                "the runs share no task with raw scores (raw/<TASK>/<video>.csv in both): nothing to compare",
                run_a.string() + " and " + run_b.string());
  }
  return comparison;
}

std::string format_comparison(const std::vector<TaskComparison>& comparison) {
  std::string text;
  char line[256];
  for (const TaskComparison& c : comparison) {
    std::snprintf(line, sizeof line, "%s: %ld videos, %ld frames with a crop in both runs", task_name(c.task), c.videos,
                  c.frames);
    text += line;
    if (c.frames_skipped > 0) text += ", " + std::to_string(c.frames_skipped) + " without (not compared)";
    if (c.videos_only_a + c.videos_only_b > 0) {
      text += "; videos in one run only: " + std::to_string(c.videos_only_a) + " (A), " +
              std::to_string(c.videos_only_b) + " (B)";
    }
    std::snprintf(line, sizeof line, "\n  raw scores |A - B|: max %.3g, mean %.3g\n", c.max_abs, c.mean_abs);
    text += line;
    if (c.task == Task::kVA) {
      std::snprintf(line, sizeof line, "  CCC between the runs: valence %.6f, arousal %.6f\n", c.ccc[0], c.ccc[1]);
      text += line;
    }
    if (c.labels_compared()) {
      std::snprintf(line, sizeof line, "  labels (submissions, %ld rows in both): %.4f%% %s\n", c.rows,
                    100.0 * c.label_agreement, c.task == Task::kEXPR ? "of rows agree" : "of (row, AU) labels agree");
      text += line;
    } else if (c.task != Task::kVA) {
      text += "  labels: not compared (a run has no submission for this task)\n";
    }
    for (const VideoDifference& v : c.worst) {
      std::snprintf(line, sizeof line, "  worst: %s  mean %.3g, max %.3g over %ld frames\n", v.video.c_str(),
                    v.mean_abs, v.max_abs, v.frames);
      text += line;
    }
  }
  return text;
}

nlohmann::json comparison_to_json(const std::vector<TaskComparison>& comparison) {
  nlohmann::json out = nlohmann::json::object();
  for (const TaskComparison& c : comparison) {
    nlohmann::json worst = nlohmann::json::array();
    for (const VideoDifference& v : c.worst) {
      worst.push_back({{"video", v.video}, {"frames", v.frames}, {"mean_abs", v.mean_abs}, {"max_abs", v.max_abs}});
    }
    nlohmann::json task{{"videos", c.videos},
                        {"videos_only_a", c.videos_only_a},
                        {"videos_only_b", c.videos_only_b},
                        {"frames", c.frames},
                        {"frames_skipped", c.frames_skipped},
                        {"mean_abs", c.mean_abs},
                        {"max_abs", c.max_abs},
                        {"worst", worst}};
    if (c.task == Task::kVA) task["ccc"] = {{"valence", c.ccc[0]}, {"arousal", c.ccc[1]}};
    if (c.labels_compared()) {
      task["labels"] = {{"rows", c.rows}, {"agreement", c.label_agreement}};
      if (c.task == Task::kAU) {
        nlohmann::json per_au = nlohmann::json::object();
        for (int au = 0; au < 12; ++au) per_au[task_columns(Task::kAU)[au]] = c.au_agreement[au];
        task["labels"]["per_au"] = per_au;
      }
    }
    out[task_name(c.task)] = task;
  }
  return out;
}

}  // namespace abaw
