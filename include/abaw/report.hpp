// `report`: one self-contained HTML file that shows what a run predicted: the run's summary, per
// task the scores against annotations (per dimension / class / AU, the EXPR confusion matrix,
// the videos worst first) and per video a timeline of every task's scores, with the annotation,
// the frames without a face and, given the crops, a few thumbnails. Nothing is fetched when the
// file is opened: the chart code is inlined and the data embedded.
//
// The timelines are drawn by the inlined script from the embedded data (one JSON block,
// id "abaw-report-data"), reduced to at most `max_points` bins per video so that long runs stay
// light: VA as the min/max envelope of each bin, EXPR and AU probabilities as bin means, labels
// as the bin's most frequent one. Values are stored 8-bit (probabilities: round(p * 255); labels:
// label + 1, 0 for none) or 16-bit (VA: round((v + 1) / 2 * 65534), 65535 for none), little-
// endian, base64: the resolution of a chart line, at a fraction of the size of decimal text.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "abaw/manifest.hpp"
#include "abaw/tasks.hpp"

namespace abaw {

struct ReportOptions {
  std::filesystem::path run;                          // a `run` output folder
  std::map<Task, std::filesystem::path> annotations;  // per task: an annotation folder to score against
  std::optional<std::filesystem::path> crops;         // the crops the run read: thumbnails
  std::filesystem::path output;                       // the HTML file
  int max_points = 2000;                              // bins per video timeline
  int thumbnails = 8;                                 // per video, with `crops`
};

// What write_report wrote.
struct ReportSummary {
  long videos = 0;
  long tasks = 0;
  bool scored = false;          // annotations given for at least one task
  std::string post_processing;  // whose: the run's model set, or plain when it cannot be read
};

// The post-processing of the model set a run's run.json names, per task (plain_task_config for
// tasks it lacks); plain for every task when run.json names none or it cannot be loaded (logged).
// `whose` receives a sentence saying which. Throws Error(kInput) when `run` has no run.json.
std::map<Task, TaskConfig> run_post_processing(const std::filesystem::path& run, std::string* whose);

// Writes the report atomically. Labels come from the raw scores with the post-processing of the
// model set named in run.json (plain when it is gone, said in the report), so the report's scores
// are those of the labels it draws. Throws Error(kInput) naming the file for a folder without
// run.json or raw scores, a malformed raw-score or annotation file, and Error(kOutput) when the
// file cannot be written.
ReportSummary write_report(const ReportOptions& options);

}  // namespace abaw
