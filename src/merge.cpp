#include "abaw/merge.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "abaw/error.hpp"
#include "abaw/manifest.hpp"
#include "abaw/output_layout.hpp"
#include "abaw/postprocess.hpp"
#include "abaw/raw_scores.hpp"
#include "abaw/submission.hpp"
#include "abaw/video_index.hpp"
#include "abaw/writers.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

// video -> raw files of that video, one per input that has it (with the input's index). A file
// whose name is not a valid video name is an input error: its name would become an output path.
std::map<std::string, std::vector<std::pair<size_t, fs::path>>> find_raw_files(const MergeOptions& options, Task task) {
  std::map<std::string, std::vector<std::pair<size_t, fs::path>>> files;
  for (size_t i = 0; i < options.inputs.size(); ++i) {
    const fs::path folder = OutputLayout{options.inputs[i]}.raw_scores_folder(task);
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) continue;
    for (const fs::directory_entry& entry : list_folder(folder, "raw scores")) {
      std::error_code type_ec;
      if (entry.is_regular_file(type_ec) && entry.path().extension() == ".csv") {
        files[video_name_of_file(entry.path())].emplace_back(i, entry.path());
      }
    }
  }
  return files;
}

}  // namespace

MergeResult merge_runs(const MergeOptions& options) {
  if (options.inputs.empty()) throw Error(ErrorKind::kUsage, "merge needs at least one input folder");
  std::vector<double> weights =
      options.weights.empty() ? std::vector<double>(options.inputs.size(), 1.0) : options.weights;
  if (weights.size() != options.inputs.size()) {
    throw Error(ErrorKind::kUsage,
                "--weights needs one weight per input (" + std::to_string(options.inputs.size()) + ")");
  }
  for (double w : weights) {
    if (!(w > 0)) throw Error(ErrorKind::kUsage, "weights must be positive");
  }
  std::optional<Manifest> manifest;
  if (options.model_set) manifest = load_manifest(*options.model_set, options.manifest_patch);

  std::vector<Task> tasks = options.rows.tasks;
  if (tasks.empty()) {
    for (Task task : all_tasks()) {
      if (!find_raw_files(options, task).empty()) tasks.push_back(task);
    }
  }
  if (tasks.empty()) throw Error(ErrorKind::kInput, "no raw/<TASK>/ scores in any input folder");

  MergeResult result;
  const OutputLayout layout{options.output};
  for (Task task : tasks) {
    const auto raw_files = find_raw_files(options, task);
    TaskConfig config = plain_task_config(task);
    if (manifest) {
      auto it = manifest->tasks.find(task);
      if (it == manifest->tasks.end()) {
        throw Error(ErrorKind::kUsage, std::string("the model set has no ") + task_key(task) + " task",
                    options.model_set->string());
      }
      config = it->second;
    } else {
      spdlog::warn("{}: no --model-set: plain post-processing (argmax, AU threshold 0.5, no filters)", task_name(task));
    }

    std::vector<FrameRow> rows;
    std::string rows_origin;  // the frame list or annotation folder the rows come from
    if (auto listed = listed_rows(options.rows, task)) {
      rows = std::move(listed->rows);
      rows_origin = listed->origin;
    }
    std::map<std::string, long> frames_needed;  // video -> the highest frame a row names
    for (const auto& row : rows) {
      long& frames = frames_needed[row.video];
      frames = std::max(frames, row.frame);
    }
    std::set<std::string> needed;
    for (const auto& row : rows) needed.insert(row.video);
    const bool rows_from_raw = rows.empty();
    if (rows_from_raw) {
      spdlog::warn("{}: no frame list or annotations: one row per frame of each merged video", task_name(task));
      for (const auto& [video, files] : raw_files) needed.insert(video);
    }

    std::map<std::string, VideoResult> results;
    std::map<std::string, long> counts;
    for (const std::string& video : needed) {
      auto found = raw_files.find(video);
      if (found == raw_files.end()) {
        throw Error(ErrorKind::kInput, std::string("no ") + task_name(task) + " raw scores for video '" + video +
                                           "' in any input (missing shard?)");
      }
      ScoreMatrix merged_scores;
      std::vector<uint8_t> has_crop;
      std::vector<double> sum;
      double total_weight = 0;
      for (const auto& [input, file] : found->second) {
        std::vector<uint8_t> crops;
        ScoreMatrix raw = read_raw_scores(file, task, &crops);
        if (sum.empty()) {
          sum.assign(raw.values.size(), 0.0);
          has_crop = crops;
          merged_scores = raw;  // a single input is kept exactly: shards reproduce one run's files
        } else if (raw.frames != merged_scores.frames) {
          throw Error(ErrorKind::kInput,
                      std::to_string(raw.frames) + " frames, another input has " +
                          std::to_string(merged_scores.frames) + " for this video",
                      file.string());
        }
        for (size_t k = 0; k < raw.values.size(); ++k) sum[k] += weights[input] * raw.values[k];
        for (size_t f = 0; f < crops.size(); ++f) has_crop[f] = has_crop[f] || crops[f];
        total_weight += weights[input];
      }
      if (auto need = frames_needed.find(video); need != frames_needed.end() && need->second > merged_scores.frames) {
        throw Error(ErrorKind::kInput,
                    "raw scores cover " + std::to_string(merged_scores.frames) + " frames of '" + video + "', but " +
                        rows_origin + " needs " + std::to_string(need->second) +
                        "; was this output made without that frame list or annotation folder (run --frame-list / "
                        "--annotations decide a video's frame count)?",
                    found->second.front().second.string());
      }
      if (found->second.size() > 1) {
        for (size_t k = 0; k < sum.size(); ++k) merged_scores.values[k] = static_cast<float>(sum[k] / total_weight);
      }
      VideoResult merged;
      merged.raw = std::move(merged_scores);
      merged.has_crop = std::move(has_crop);
      merged.predicted = finalize_predictions(config, merged.raw);
      write_raw_scores(layout.raw_scores(task, VideoName::checked(video)), task, merged);
      counts[video] = merged.raw.frames;
      merged.raw = ScoreMatrix{};
      results[video] = std::move(merged);
    }
    if (rows_from_raw) rows = rows_for_counts(counts);
    const fs::path path = layout.submission(task);
    write_submission(path, task, rows, results);
    result.submissions[task] = path;
    spdlog::info("wrote {} ({} rows from {} videos)", path.string(), rows.size(), results.size());
  }
  return result;
}

}  // namespace abaw
