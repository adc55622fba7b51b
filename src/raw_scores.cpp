#include "abaw/raw_scores.hpp"

#include <cmath>
#include <cstdio>

#include "abaw/annotations.hpp"
#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/output_layout.hpp"
#include "csv_fields.hpp"

namespace fs = std::filesystem;

namespace abaw {

std::string raw_score_header(Task task) { return "frame,has_crop," + annotation_header(task); }

ScoreMatrix read_raw_scores(const fs::path& file, Task task, std::vector<uint8_t>* has_crop) {
  auto lines = read_text_lines(file);
  if (lines.empty() || lines[0] != raw_score_header(task)) {
    throw Error(ErrorKind::kInput, "expected the raw-score header '" + raw_score_header(task) + "'", file.string(), 1);
  }
  const int width = task_width(task);
  ScoreMatrix raw{0, width, {}};
  for (size_t i = 1; i < lines.size(); ++i) {
    const long line = static_cast<long>(i + 1);
    if (lines[i].empty() && i + 1 == lines.size()) break;
    auto fields = split_fields(lines[i]);
    long frame = 0, has_crop_value = 0;
    if (fields.size() != static_cast<size_t>(2 + width) || !to_long(fields[0], &frame) ||
        !to_long(fields[1], &has_crop_value)) {
      throw Error(ErrorKind::kInput, "expected frame,has_crop and " + std::to_string(width) + " scores", file.string(),
                  line);
    }
    if (has_crop) has_crop->push_back(has_crop_value != 0);
    if (frame != raw.frames + 1) {
      throw Error(ErrorKind::kInput,
                  "frame " + std::to_string(frame) + " where frame " + std::to_string(raw.frames + 1) +
                      " belongs (one line per frame, in order)",
                  file.string(), line);
    }
    for (int c = 0; c < width; ++c) {
      double v = 0;
      if (!to_double(fields[c + 2], &v) || !std::isfinite(v)) {
        throw Error(ErrorKind::kInput, "score " + std::to_string(c + 1) + " is not a finite number", file.string(),
                    line);
      }
      raw.values.push_back(static_cast<float>(v));
    }
    ++raw.frames;
  }
  return raw;
}

std::map<std::string, fs::path> raw_score_files(const fs::path& run, Task task) {
  std::map<std::string, fs::path> files;
  const fs::path folder = OutputLayout{run}.raw_scores_folder(task);
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return files;
  for (const auto& entry : list_folder(folder, "raw-score folder")) {
    std::error_code type_ec;
    if (entry.path().extension() != ".csv" || !entry.is_regular_file(type_ec)) continue;
    if (auto name = VideoName::parse(entry.path().stem().string())) files[name->str()] = entry.path();
  }
  return files;
}

void write_raw_scores(const fs::path& path, Task task, const VideoResult& result, Durability durability) {
  std::string text = raw_score_header(task) + "\n";
  for (long t = 0; t < result.raw.frames; ++t) {
    text += std::to_string(t + 1);
    text += result.has_crop[t] ? ",1" : ",0";
    for (int c = 0; c < result.raw.width; ++c) {
      text += ',';
      char number[32];
      std::snprintf(number, sizeof number, "%.9g", result.raw.row(t)[c]);
      text += number;
    }
    text += '\n';
  }
  write_file_atomically(path, text, durability);
}

}  // namespace abaw
