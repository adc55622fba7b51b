// Readers for the text files that say which frames exist: official test example files (frame
// lists), annotation files and folders, and test-set video lists. Errors name file and line.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "abaw/frame_names.hpp"
#include "abaw/tasks.hpp"

namespace abaw {

// The lines of a text file without their line endings ("\n" or "\r\n"); a final newline does not
// make an extra empty line. Throws Error(kInput) when the file cannot be read.
std::vector<std::string> read_text_lines(const std::filesystem::path& file);

// How a header line relates to the tasks.
struct HeaderMatch {
  Task task;
  bool submission = false;  // starts with "image_location,"
  bool quoted = false;      // had double quotes (pandas writes the EXPR header quoted)
};

// Recognises an annotation header or a submission header of any task; nothing otherwise.
std::optional<HeaderMatch> match_header(const std::string& line);

// One row of a frame list: the image_location exactly as written, and what it names.
struct FrameRow {
  std::string image_location;
  VideoName video;
  long frame = 0;
};

// An official test example / sample file: header, then one row per frame to predict.
struct FrameList {
  Task task;
  std::filesystem::path path;
  std::vector<FrameRow> rows;  // in file order
};

// Reads a frame list. The header must be a submission header (of `expected` when given); the
// values after the image location are ignored (ABAW 5 samples leave them empty).
FrameList read_frame_list(const std::filesystem::path& file, std::optional<Task> expected = std::nullopt);

// One annotation file: `frames` lines of values, row-major: 2 for VA, 1 class index for EXPR,
// 12 for AU. Invalid frames
// keep their marker (-5 for VA, -1 for EXPR and AU).
struct AnnotationFile {
  Task task;
  std::filesystem::path path;
  long frames = 0;
  std::vector<float> values;
};

// Reads and validates one annotation file (values in range, right column count). The task comes
// from the header; `expected` makes a header of another task an error.
AnnotationFile read_annotation_file(const std::filesystem::path& file, std::optional<Task> expected = std::nullopt);

// An annotation folder (`*_Challenge/*_Set`): task and frame count of every video in it.
struct AnnotationFolder {
  Task task;
  std::filesystem::path path;
  std::map<std::string, long> frame_counts;  // video -> frames (lines after the header)
};

// Reads every `<video>.txt` in `folder` (all must have the same task, `expected` when given).
// Video names come from the file names (see annotation_files).
AnnotationFolder read_annotation_folder(const std::filesystem::path& folder,
                                        std::optional<Task> expected = std::nullopt);

// The `<video>.txt` files of an annotation folder, sorted by name. Throws Error(kInput) when the
// folder is missing, unreadable or has none, or when a file's name is not a valid video name
// (a file named `-x.txt` would otherwise become the video '-x' of every output).
std::vector<std::filesystem::path> annotation_files(const std::filesystem::path& folder);

// Whether an annotation line marks a frame to leave out: -5 in VA, -1 in EXPR, -1 in all 12 AUs.
bool label_is_invalid(Task task, const float* label);

// The task of an annotation folder, from the header of its first `.txt` file (by name).
Task annotation_folder_task(const std::filesystem::path& folder);

// The file `crop` writes in its output folder: `video,frames`, the frames decoded per video.
// `run` reads it from the crops folder for tasks without a frame list or annotations.
inline constexpr char kFrameCountFile[] = "frame_counts.csv";

// Reads a kFrameCountFile; every video name is checked (Error(kInput) with file and line).
std::map<std::string, long> read_frame_counts(const std::filesystem::path& file);

// A `*_test_set_release.txt` style list: one video name per line, blank lines ignored, each a
// valid video name (Error(kInput) with file and line otherwise).
std::vector<std::string> read_video_list(const std::filesystem::path& file);

}  // namespace abaw
