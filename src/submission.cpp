#include "abaw/submission.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/raw_scores.hpp"
#include "csv_fields.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

void store(PredictionSet& set, const std::string& video, long frame, const float* values, const fs::path& file,
           long line) {
  VideoPredictions& predictions = set.videos[video];
  const int width = submission_width(set.task);
  predictions.width = width;
  const size_t row = predictions.row_of_frame.size();
  if (!predictions.row_of_frame.emplace(frame, row).second) {
    throw Error(ErrorKind::kInput, "second prediction for " + format_image_location(video, frame), file.string(), line);
  }
  predictions.values.insert(predictions.values.end(), values, values + width);
}

void read_submission_file(PredictionSet& set, const fs::path& file) {
  auto lines = read_text_lines(file);
  if (lines.empty()) throw Error(ErrorKind::kInput, "file is empty", file.string());
  auto header = match_header(lines[0]);
  if (!header || !header->submission || header->task != set.task) {
    throw Error(
        ErrorKind::kInput,
        std::string("expected the ") + task_name(set.task) + " submission header '" + submission_header(set.task) + "'",
        file.string(), 1);
  }
  float values[12];
  for (size_t i = 1; i < lines.size(); ++i) {
    const long line = static_cast<long>(i + 1);
    if (lines[i].empty() && i + 1 == lines.size()) break;
    auto fields = split_fields(lines[i]);
    std::string location_problem;
    auto location = parse_image_location(fields[0], &location_problem);
    if (!location) {
      throw Error(
          ErrorKind::kInput,
          "expected " + image_location_form() + " first, got '" + fields[0].substr(0, 80) + "': " + location_problem,
          file.string(), line);
    }
    fields.erase(fields.begin());
    std::string kind;
    const std::string problem = parse_prediction_values(set.task, fields, values, &kind);
    if (!problem.empty()) throw Error(ErrorKind::kInput, problem, file.string(), line);
    store(set, location->video, location->frame, values, file, line);
  }
}

void read_per_video_file(PredictionSet& set, const fs::path& file) {
  auto lines = read_text_lines(file);
  if (lines.empty()) throw Error(ErrorKind::kInput, "file is empty", file.string());
  const VideoName video = video_name_of_file(file);
  float values[12];
  if (lines[0] == raw_score_header(set.task)) {
    // Raw scores become labels the plain way; tuned filters and thresholds are `tune`'s job.
    const ScoreMatrix raw = read_raw_scores(file, set.task);
    for (long f = 0; f < raw.frames; ++f) {
      const float* scores = raw.row(f);
      if (set.task == Task::kVA) {
        for (int c = 0; c < 2; ++c) values[c] = std::clamp(scores[c], -1.0f, 1.0f);
      } else if (set.task == Task::kEXPR) {
        values[0] = static_cast<float>(std::max_element(scores, scores + raw.width) - scores);
      } else {
        for (int c = 0; c < 12; ++c) values[c] = scores[c] >= 0.5f ? 1.0f : 0.0f;
      }
      store(set, video, f + 1, values, file, f + 2);
    }
    return;
  }
  auto header = match_header(lines[0]);
  if (!header || header->submission || header->task != set.task) {
    throw Error(ErrorKind::kInput,
                std::string("expected the ") + task_name(set.task) + " annotation header '" +
                    annotation_header(set.task) + "' or the raw-score header '" + raw_score_header(set.task) + "'",
                file.string(), 1);
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const long line = static_cast<long>(i + 1);
    if (lines[i].empty() && i + 1 == lines.size()) break;
    auto fields = split_fields(lines[i]);
    std::string kind;
    const std::string problem = parse_prediction_values(set.task, fields, values, &kind);
    if (!problem.empty()) throw Error(ErrorKind::kInput, problem, file.string(), line);
    store(set, video, static_cast<long>(i), values, file, line);
  }
}

}  // namespace

int submission_width(Task task) { return task == Task::kEXPR ? 1 : task_width(task); }

std::string parse_prediction_values(Task task, const std::vector<std::string>& fields, float* out, std::string* kind) {
  const size_t width = static_cast<size_t>(submission_width(task));
  if (fields.size() != width) {
    *kind = "columns";
    std::string message = "expected " + std::to_string(width) + " value" + (width > 1 ? "s" : "") +
                          " after the image location, found " + std::to_string(fields.size());
    if (fields.size() == width + 1 && fields.back().empty()) message += " (trailing comma)";
    return message;
  }
  for (size_t c = 0; c < width; ++c) {
    const std::string& field = fields[c];
    const std::string which = "value " + std::to_string(c + 1) + " ('" + field.substr(0, 30) + "')";
    if (task == Task::kVA) {
      double v = 0;
      if (!to_double(field, &v)) {
        *kind = "value";
        return which + " is not a number";
      }
      if (!std::isfinite(v) || v < -1.0 || v > 1.0) {
        *kind = "range";
        return which + " is not a finite number in [-1, 1]";
      }
      out[c] = static_cast<float>(v);
    } else {
      long label = 0;
      if (!to_long(field, &label)) {
        *kind = "value";
        return which + " is not an integer";
      }
      const long max = task == Task::kEXPR ? 7 : 1;
      if (label < 0 || label > max) {
        *kind = "range";
        return which + (task == Task::kEXPR ? " is not a class index 0..7" : " is not 0 or 1");
      }
      out[c] = static_cast<float>(label);
    }
  }
  kind->clear();
  return {};
}

PredictionSet read_predictions(const fs::path& path, Task task) {
  PredictionSet set;
  set.task = task;
  set.origin = path.string();
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto& entry : list_folder(path, "prediction folder")) {
      const auto ext = entry.path().extension();
      std::error_code type_ec;
      if (entry.is_regular_file(type_ec) && (ext == ".txt" || ext == ".csv")) files.push_back(entry.path());
    }
    if (files.empty()) throw Error(ErrorKind::kInput, "no .txt or .csv prediction files", path.string());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      if (set.videos.count(file.stem().string())) {
        throw Error(ErrorKind::kInput, "two prediction files for video '" + file.stem().string() + "'", file.string());
      }
      read_per_video_file(set, file);
    }
  } else if (fs::is_regular_file(path, ec)) {
    read_submission_file(set, path);
  } else {
    throw Error(ErrorKind::kInput, "predictions file or folder does not exist", path.string());
  }
  return set;
}

SubmissionCheck check_submission(const fs::path& submission, Task task, const FrameList& frame_list) {
  SubmissionCheck check;
  auto problem = [&](const std::string& kind, long line, const std::string& message) {
    check.problems.push_back({kind, line, message});
  };
  std::ifstream probe(submission, std::ios::binary);
  std::string first_bytes(4096, '\0');
  probe.read(first_bytes.data(), static_cast<std::streamsize>(first_bytes.size()));
  first_bytes.resize(static_cast<size_t>(probe.gcount()));
  if (first_bytes.find("\r\n") != std::string::npos) {
    check.warnings.push_back("Windows (CRLF) line endings; most readers accept them");
  }
  auto lines = read_text_lines(submission);
  if (lines.empty()) {
    problem("header", 1, "the file is empty");
    for (size_t i = 0; i < frame_list.rows.size(); ++i) {
      problem("missing_row", static_cast<long>(i + 2), frame_list.rows[i].image_location + " has no row");
    }
    return check;
  }
  auto header = match_header(lines[0]);
  if (lines[0] == submission_header(task)) {
    // exact
  } else if (header && header->submission && header->task == task && header->quoted) {
    check.warnings.push_back("line 1: quoted header (as pandas writes it); accepted, but the exact header is '" +
                             submission_header(task) + "'");
  } else if (header && header->task != task) {
    problem("header", 1,
            std::string("this is the ") + task_name(header->task) +
                (header->submission ? " submission" : " annotation") + " header; a " + task_name(task) +
                " submission starts with '" + submission_header(task) + "'");
  } else {
    problem("header", 1, "expected exactly '" + submission_header(task) + "'");
  }

  std::unordered_map<std::string, size_t> expected_index;
  expected_index.reserve(frame_list.rows.size());
  for (size_t i = 0; i < frame_list.rows.size(); ++i) expected_index.emplace(frame_list.rows[i].image_location, i);
  std::vector<long> seen_at(frame_list.rows.size(), 0);
  long last_index = -1;
  float values[12];
  for (size_t i = 1; i < lines.size(); ++i) {
    const long line = static_cast<long>(i + 1);
    if (lines[i].empty()) {
      if (i + 1 == lines.size()) break;
      problem("columns", line, "empty line");
      continue;
    }
    ++check.rows;
    auto fields = split_fields(lines[i]);
    const std::string location = fields[0];
    fields.erase(fields.begin());
    std::string kind;
    const std::string message = parse_prediction_values(task, fields, values, &kind);
    if (!message.empty()) problem(kind, line, message);
    auto it = expected_index.find(location);
    if (it == expected_index.end()) {
      problem("unknown_row", line, "'" + location.substr(0, 60) + "' is not in the frame list");
      continue;
    }
    const size_t index = it->second;
    if (seen_at[index] != 0) {
      problem("duplicate_row", line, location + " already appeared on line " + std::to_string(seen_at[index]));
      continue;
    }
    seen_at[index] = line;
    if (static_cast<long>(index) < last_index) {
      problem("order", line,
              location + " comes after " + frame_list.rows[last_index].image_location +
                  ", but the frame list has it earlier");
    }
    last_index = std::max(last_index, static_cast<long>(index));
  }
  for (size_t i = 0; i < frame_list.rows.size(); ++i) {
    if (seen_at[i] == 0) {
      problem("missing_row", static_cast<long>(i + 2),
              frame_list.rows[i].image_location + " (frame list line " + std::to_string(i + 2) + ") has no row");
    }
  }
  return check;
}

}  // namespace abaw
