#include "abaw/annotations.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

std::string trim(const std::string& s) {
  size_t begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return {};
  size_t end = s.find_last_not_of(" \t");
  return s.substr(begin, end - begin + 1);
}

std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream stream(line);
  while (std::getline(stream, field, ',')) fields.push_back(trim(field));
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

bool parse_float(const std::string& text, double* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *value = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size() && std::isfinite(*value);
}

bool parse_int(const std::string& text, long* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *value = std::strtol(text.c_str(), &end, 10);
  return errno == 0 && end == text.c_str() + text.size();
}

// Lines after the header, with trailing blank lines dropped; a blank line before the end is an
// error because it would shift every later frame by one.
std::vector<std::string> body_lines(const std::vector<std::string>& lines, const fs::path& file) {
  std::vector<std::string> body(lines.begin() + 1, lines.end());
  while (!body.empty() && trim(body.back()).empty()) body.pop_back();
  for (size_t i = 0; i < body.size(); ++i) {
    if (trim(body[i]).empty()) {
      throw Error(ErrorKind::kInput, "blank line inside the file", file.string(), static_cast<long>(i + 2));
    }
  }
  return body;
}

std::vector<std::string> non_empty_lines(const fs::path& file) {
  auto lines = read_text_lines(file);
  if (lines.empty() || trim(lines[0]).empty()) {
    throw Error(ErrorKind::kInput, "file is empty (expected a header line)", file.string());
  }
  return lines;
}

}  // namespace

std::vector<std::string> read_text_lines(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorKind::kInput, "cannot open file", file.string());
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  if (in.bad()) throw Error(ErrorKind::kInput, "read error", file.string());
  // A UTF-8 byte-order mark (Windows editors) would otherwise break the header match.
  if (!lines.empty() && lines[0].rfind("\xEF\xBB\xBF", 0) == 0) lines[0].erase(0, 3);
  return lines;
}

std::optional<HeaderMatch> match_header(const std::string& raw_line) {
  std::string line = trim(raw_line);
  bool quoted = line.find('"') != std::string::npos;
  line.erase(std::remove(line.begin(), line.end(), '"'), line.end());
  // Tolerate spaces after commas, but nothing else: the header is part of the format.
  std::string compact;
  for (char c : line) {
    if (c != ' ') compact += c;
  }
  for (Task task : all_tasks()) {
    if (compact == annotation_header(task)) return HeaderMatch{task, false, quoted};
    if (compact == submission_header(task)) return HeaderMatch{task, true, quoted};
  }
  return std::nullopt;
}

FrameList read_frame_list(const fs::path& file, std::optional<Task> expected) {
  auto lines = non_empty_lines(file);
  auto header = match_header(lines[0]);
  if (!header || !header->submission) {
    throw Error(ErrorKind::kInput,
                "not a frame list: the header is not a VA, EXPR or AU submission header ('" +
                    trim(lines[0]).substr(0, 80) + "')",
                file.string(), 1);
  }
  if (expected && header->task != *expected) {
    throw Error(ErrorKind::kInput,
                std::string("frame list is for ") + task_name(header->task) + ", expected " + task_name(*expected),
                file.string(), 1);
  }
  if (header->quoted) {
    spdlog::warn("{}:1: quoted header (as pandas writes it); accepted", file.string());
  }
  FrameList list{header->task, file, {}};
  auto body = body_lines(lines, file);
  list.rows.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    std::string location = trim(body[i].substr(0, body[i].find(',')));
    std::string problem;
    auto parsed = parse_image_location(location, &problem);
    if (!parsed) {
      throw Error(ErrorKind::kInput,
                  "expected " + image_location_form() + " at the start of the line, got '" + location.substr(0, 80) +
                      "': " + problem,
                  file.string(), static_cast<long>(i + 2));
    }
    list.rows.push_back(FrameRow{location, std::move(parsed->video), parsed->frame});
  }
  if (list.rows.empty()) throw Error(ErrorKind::kInput, "frame list has no rows", file.string());
  return list;
}

AnnotationFile read_annotation_file(const fs::path& file, std::optional<Task> expected) {
  auto lines = non_empty_lines(file);
  auto header = match_header(lines[0]);
  if (!header || header->submission) {
    throw Error(ErrorKind::kInput,
                "not an annotation file: the header is not a VA, EXPR or AU annotation header ('" +
                    trim(lines[0]).substr(0, 80) + "')",
                file.string(), 1);
  }
  if (expected && header->task != *expected) {
    throw Error(ErrorKind::kInput,
                std::string("annotation file is for ") + task_name(header->task) + ", expected " + task_name(*expected),
                file.string(), 1);
  }
  const Task task = header->task;
  // EXPR lines hold one class index; VA and AU one value per column.
  const size_t width = task == Task::kEXPR ? 1 : static_cast<size_t>(task_width(task));
  AnnotationFile result{task, file, 0, {}};
  auto body = body_lines(lines, file);
  result.values.reserve(body.size() * width);
  for (size_t i = 0; i < body.size(); ++i) {
    const long line_number = static_cast<long>(i + 2);
    auto fields = split_commas(body[i]);
    if (fields.size() != width) {
      throw Error(ErrorKind::kInput,
                  "expected " + std::to_string(width) + " values, found " + std::to_string(fields.size()),
                  file.string(), line_number);
    }
    for (size_t c = 0; c < width; ++c) {
      const std::string& field = fields[c];
      bool ok = false;
      double value = 0;
      if (task == Task::kVA) {
        ok = parse_float(field, &value) && ((value >= -1.0 && value <= 1.0) || value == -5.0);
      } else {
        long label = 0;
        ok = parse_int(field, &label) &&
             (task == Task::kEXPR ? (label >= -1 && label <= 7) : (label >= -1 && label <= 1));
        value = static_cast<double>(label);
      }
      if (!ok) {
        const char* allowed = task == Task::kVA     ? "a number in [-1, 1] or -5"
                              : task == Task::kEXPR ? "an integer 0..7 or -1"
                                                    : "0, 1 or -1";
        throw Error(ErrorKind::kInput,
                    "value " + std::to_string(c + 1) + " ('" + field.substr(0, 40) + "') is not " + allowed,
                    file.string(), line_number);
      }
      result.values.push_back(static_cast<float>(value));
    }
  }
  result.frames = static_cast<long>(body.size());
  return result;
}

std::vector<fs::path> annotation_files(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    throw Error(ErrorKind::kInput, "annotation folder does not exist or is not a folder", folder.string());
  }
  std::vector<fs::path> files;
  for (const auto& entry : list_folder(folder, "annotation folder")) {
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec) || entry.path().extension() != ".txt") continue;
    // Hidden files are no annotations: macOS copies leave "._<video>.txt" resource forks.
    if (entry.path().filename().string().front() == '.') {
      spdlog::warn("{}: hidden file skipped", entry.path().string());
      continue;
    }
    files.push_back(entry.path());
  }
  if (files.empty()) throw Error(ErrorKind::kInput, "annotation folder has no .txt files", folder.string());
  std::sort(files.begin(), files.end());
  for (const auto& file : files) video_name_of_file(file);
  return files;
}

bool label_is_invalid(Task task, const float* label) {
  switch (task) {
    case Task::kVA:
      return label[0] == -5.0f || label[1] == -5.0f;
    case Task::kEXPR:
      return label[0] < 0;
    case Task::kAU:
      return std::all_of(label, label + 12, [](float v) { return v < 0; });
  }
  return true;
}

Task annotation_folder_task(const fs::path& folder) {
  const fs::path first = annotation_files(folder).front();
  std::ifstream in(first, std::ios::binary);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
  auto header = match_header(line);
  if (!header || header->submission) {
    throw Error(ErrorKind::kInput, "not an annotation file: the header is not a VA, EXPR or AU annotation header",
                first.string(), 1);
  }
  return header->task;
}

AnnotationFolder read_annotation_folder(const fs::path& folder, std::optional<Task> expected) {
  const std::vector<fs::path> files = annotation_files(folder);
  AnnotationFolder result{Task::kVA, folder, {}};
  std::optional<Task> task = expected;
  for (const auto& file : files) {
    AnnotationFile annotation = read_annotation_file(file, task);
    task = annotation.task;
    result.frame_counts[file.stem().string()] = annotation.frames;
  }
  result.task = *task;
  return result;
}

std::map<std::string, long> read_frame_counts(const fs::path& file) {
  auto lines = non_empty_lines(file);
  if (trim(lines[0]) != "video,frames") {
    throw Error(ErrorKind::kInput, "expected the header 'video,frames'", file.string(), 1);
  }
  std::map<std::string, long> counts;
  auto body = body_lines(lines, file);
  for (size_t i = 0; i < body.size(); ++i) {
    auto fields = split_commas(body[i]);
    long frames = 0;
    if (fields.size() != 2 || fields[0].empty() || !parse_int(fields[1], &frames) || frames < 1 ||
        frames > kMaxFrameNumber) {
      throw Error(ErrorKind::kInput, "expected 'video,frames' with frames from 1 to " + std::to_string(kMaxFrameNumber),
                  file.string(), static_cast<long>(i + 2));
    }
    counts[VideoName::checked(fields[0], file.string(), static_cast<long>(i + 2))] = frames;
  }
  return counts;
}

std::vector<std::string> read_video_list(const fs::path& file) {
  std::vector<std::string> videos;
  std::set<std::string> seen;
  auto lines = read_text_lines(file);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string name = trim(lines[i]);
    if (name.empty()) continue;
    VideoName::checked(name, file.string(), static_cast<long>(i + 1), "a video list has one video name per line");
    if (seen.insert(name).second) videos.push_back(name);
  }
  if (videos.empty()) throw Error(ErrorKind::kInput, "video list is empty", file.string());
  return videos;
}

}  // namespace abaw
