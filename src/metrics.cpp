#include "abaw/metrics.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"

namespace fs = std::filesystem;

namespace abaw {

double concordance_correlation(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  if (n == 0) return 0.0;
  double mean_x = 0, mean_y = 0;
  for (size_t i = 0; i < n; ++i) {
    mean_x += x[i];
    mean_y += y[i];
  }
  mean_x /= n;
  mean_y /= n;
  double var_x = 0, var_y = 0, cov = 0;  // two passes: no cancellation on long, offset series
  for (size_t i = 0; i < n; ++i) {
    const double dx = x[i] - mean_x, dy = y[i] - mean_y;
    var_x += dx * dx;
    var_y += dy * dy;
    cov += dx * dy;
  }
  var_x /= n;
  var_y /= n;
  cov /= n;
  const double denominator = var_x + var_y + (mean_x - mean_y) * (mean_x - mean_y);
  return denominator > 0 ? 2.0 * cov / denominator : 0.0;
}

double F1Counts::f1() const {
  const long denominator = 2 * true_positives + false_positives + false_negatives;
  return denominator > 0 ? 2.0 * true_positives / denominator : 0.0;
}

Evaluation score_frames(Task task, const std::vector<float>& predictions, const std::vector<float>& labels) {
  Evaluation e;
  e.task = task;
  const auto& names = task_columns(task);
  if (task == Task::kVA) {
    const size_t n = labels.size() / 2;
    for (int d = 0; d < 2; ++d) {
      std::vector<double> p(n), l(n);
      for (size_t i = 0; i < n; ++i) {
        p[i] = predictions[2 * i + d];
        l[i] = labels[2 * i + d];
      }
      e.parts.push_back({names[d], concordance_correlation(p, l), static_cast<long>(n), {}});
    }
    e.frames_evaluated = static_cast<long>(n);
  } else if (task == Task::kEXPR) {
    std::vector<F1Counts> counts(8);
    for (size_t i = 0; i < labels.size(); ++i) {
      const int truth = static_cast<int>(labels[i]), guess = static_cast<int>(predictions[i]);
      if (truth == guess) {
        ++counts[truth].true_positives;
      } else {
        ++counts[guess].false_positives;
        ++counts[truth].false_negatives;
      }
    }
    for (int c = 0; c < 8; ++c)
      e.parts.push_back({names[c], counts[c].f1(), static_cast<long>(labels.size()), counts[c]});
    e.frames_evaluated = static_cast<long>(labels.size());
  } else {
    const size_t n = labels.size() / 12;
    std::vector<F1Counts> counts(12);
    std::vector<long> frames(12, 0);
    for (size_t i = 0; i < n; ++i) {
      bool any_valid = false;
      for (int a = 0; a < 12; ++a) {
        const float truth = labels[12 * i + a];
        if (truth < 0) continue;  // -1: this AU is not annotated on this frame
        any_valid = true;
        ++frames[a];
        const bool positive = predictions[12 * i + a] >= 0.5f;
        if (truth > 0.5f && positive)
          ++counts[a].true_positives;
        else if (truth > 0.5f)
          ++counts[a].false_negatives;
        else if (positive)
          ++counts[a].false_positives;
      }
      if (any_valid) ++e.frames_evaluated;
    }
    for (int a = 0; a < 12; ++a) e.parts.push_back({names[a], counts[a].f1(), frames[a], counts[a]});
  }
  double sum = 0;
  for (const auto& part : e.parts) sum += part.score;
  e.score = e.parts.empty() ? 0.0 : sum / static_cast<double>(e.parts.size());
  return e;
}

Evaluation evaluate(const PredictionSet& predictions, const fs::path& annotation_folder, bool allow_missing,
                    bool per_video) {
  const Task task = predictions.task;
  std::vector<std::pair<std::string, Evaluation>> videos_scored;
  const int width = submission_width(task);
  std::vector<float> pooled_predictions, pooled_labels;
  long excluded = 0, without_prediction = 0, videos = 0;
  const std::vector<fs::path> files = annotation_files(annotation_folder);
  std::string first_missing;
  for (const auto& file : files) {
    AnnotationFile annotation = read_annotation_file(file, task);
    const VideoName video = video_name_of_file(file);
    ++videos;
    auto found = predictions.videos.find(video);
    const VideoPredictions* predicted = found == predictions.videos.end() ? nullptr : &found->second;
    const size_t first_pooled = pooled_labels.size();
    const long excluded_before = excluded, without_before = without_prediction;
    for (long f = 0; f < annotation.frames; ++f) {
      const float* label = &annotation.values[static_cast<size_t>(f) * width];
      if (label_is_invalid(task, label)) {
        ++excluded;
        continue;
      }
      const float* guess = predicted ? predicted->find(f + 1) : nullptr;
      if (!guess) {
        if (!allow_missing) {
          throw Error(ErrorKind::kInput,
                      "no prediction for annotated frame " + format_image_location(video, f + 1) + " (" +
                          (predicted ? "frame missing" : "video missing") + " in " + predictions.origin +
                          "); --allow-missing scores without it",
                      file.string(), f + 2);
        }
        ++without_prediction;
        if (first_missing.empty()) first_missing = format_image_location(video, f + 1);
        continue;
      }
      pooled_predictions.insert(pooled_predictions.end(), guess, guess + width);
      pooled_labels.insert(pooled_labels.end(), label, label + width);
    }
    if (per_video && pooled_labels.size() > first_pooled) {
      Evaluation alone =
          score_frames(task, std::vector<float>(pooled_predictions.begin() + first_pooled, pooled_predictions.end()),
                       std::vector<float>(pooled_labels.begin() + first_pooled, pooled_labels.end()));
      alone.videos = 1;
      alone.frames_excluded = excluded - excluded_before;
      alone.frames_without_prediction = without_prediction - without_before;
      videos_scored.emplace_back(video, std::move(alone));
    }
  }
  Evaluation e = score_frames(task, pooled_predictions, pooled_labels);
  std::stable_sort(videos_scored.begin(), videos_scored.end(),
                   [](const auto& a, const auto& b) { return a.second.score < b.second.score; });
  e.per_video = std::move(videos_scored);
  e.videos = videos;
  e.frames_excluded = excluded;
  e.frames_without_prediction = without_prediction;
  for (const auto& [video, matrix] : predictions.videos) {
    const auto name = VideoName::parse(video);  // read through parse_image_location or checked
    if (!name || !fs::exists(video_path(annotation_folder, *name, ".txt"))) ++e.videos_not_annotated;
  }
  if (without_prediction > 0) {
    spdlog::warn("{} annotated frames have no prediction (first: {}); scored without them", without_prediction,
                 first_missing);
  }
  if (e.videos_not_annotated > 0) {
    spdlog::warn("{} predicted video(s) have no annotation file in {}; ignored", e.videos_not_annotated,
                 annotation_folder.string());
  }
  return e;
}

std::string format_evaluation(const Evaluation& e) {
  std::string out;
  char line[160];
  const char* metric = e.task == Task::kVA ? "CCC" : "F1";
  std::snprintf(line, sizeof line, "%s score: %.6f  (mean %s over %zu %s)\n", task_name(e.task), e.score, metric,
                e.parts.size(),
                e.task == Task::kVA     ? "dimensions"
                : e.task == Task::kEXPR ? "classes"
                                        : "AUs");
  out += line;
  if (e.task == Task::kVA) {
    std::snprintf(line, sizeof line, "  %-10s %10s %10s\n", "dimension", "CCC", "frames");
    out += line;
    for (const auto& p : e.parts) {
      std::snprintf(line, sizeof line, "  %-10s %10.6f %10ld\n", p.name.c_str(), p.score, p.frames);
      out += line;
    }
  } else {
    std::snprintf(line, sizeof line, "  %-10s %10s %10s %10s %10s\n", e.task == Task::kEXPR ? "class" : "AU", "F1",
                  "TP", "FP", "FN");
    out += line;
    for (const auto& p : e.parts) {
      std::snprintf(line, sizeof line, "  %-10s %10.6f %10ld %10ld %10ld\n", p.name.c_str(), p.score,
                    p.counts.true_positives, p.counts.false_positives, p.counts.false_negatives);
      out += line;
    }
  }
  std::snprintf(line, sizeof line, "videos %ld, frames evaluated %ld, excluded (invalid label) %ld", e.videos,
                e.frames_evaluated, e.frames_excluded);
  out += line;
  if (e.frames_without_prediction > 0) out += ", without prediction " + std::to_string(e.frames_without_prediction);
  out += "\n";
  return out;
}

std::string format_per_video(const Evaluation& e) {
  std::string out =
      "per video, worst first:\n  " + std::string(e.task == Task::kVA ? "CCC" : "F1 ") + "       frames  video";
  for (const auto& p : e.parts) out += "  " + p.name;
  out += "\n";
  char cell[64];
  for (const auto& [video, v] : e.per_video) {
    std::snprintf(cell, sizeof cell, "  %.6f %8ld  ", v.score, v.frames_evaluated);
    out += cell + video;
    for (const auto& p : v.parts) {
      std::snprintf(cell, sizeof cell, "  %s %.4f", p.name.c_str(), p.score);
      out += cell;
    }
    out += "\n";
  }
  return out;
}

nlohmann::json evaluation_to_json(const Evaluation& e) {
  nlohmann::json parts = nlohmann::json::object();
  for (const auto& p : e.parts) {
    nlohmann::json part = {{"score", p.score}, {"frames", p.frames}};
    if (e.task != Task::kVA) {
      part["tp"] = p.counts.true_positives;
      part["fp"] = p.counts.false_positives;
      part["fn"] = p.counts.false_negatives;
    }
    parts[p.name] = part;
  }
  nlohmann::json out = {{"task", task_name(e.task)},
                        {"metric", e.task == Task::kVA ? "mean CCC" : "mean F1"},
                        {"score", e.score},
                        {"parts", parts},
                        {"videos", e.videos},
                        {"frames_evaluated", e.frames_evaluated},
                        {"frames_excluded", e.frames_excluded},
                        {"frames_without_prediction", e.frames_without_prediction},
                        {"videos_not_annotated", e.videos_not_annotated}};
  if (!e.per_video.empty()) {
    nlohmann::json videos = nlohmann::json::array();
    for (const auto& [video, v] : e.per_video) {
      nlohmann::json one = evaluation_to_json(v);
      one.erase("task");
      one.erase("metric");
      one.erase("videos");
      one.erase("videos_not_annotated");
      one["video"] = video;
      videos.push_back(std::move(one));
    }
    out["per_video"] = std::move(videos);
  }
  return out;
}

}  // namespace abaw
