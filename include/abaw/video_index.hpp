// Which videos a run covers, how many frames each has, which frames have a crop, and which rows
// each task's submission must contain. Frame counts come from frame lists or annotation files,
// never from a video decoder; only without either is the highest crop number used.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "abaw/annotations.hpp"
#include "abaw/tasks.hpp"

namespace abaw {

// One crop file of a video.
struct CropFile {
  long frame = 0;  // 1-based
  std::filesystem::path path;
};

// One video of the run.
struct VideoEntry {
  VideoName name;
  long frames = 0;                   // the largest frame count any task needs
  std::map<Task, long> task_frames;  // frame count per task that lists this video
  std::vector<CropFile> crops;       // sorted by frame, all within 1..frames
  bool has_folder = false;           // false: no `<crops>/<name>` folder at all
  // Set when the folder exists but could not be listed (permissions, I/O error): the video
  // fails in `run` while the others go on. With rows from the crops, `frames` is then 0.
  std::string folder_error;
};

// Where a task's rows come from.
enum class RowSource { kFrameList, kAnnotations, kCrops };

// The rows one task's submission must contain, in order.
struct TaskRows {
  Task task = Task::kVA;
  RowSource source = RowSource::kCrops;
  std::string origin;  // the frame list, annotation folder or crops folder
  std::vector<FrameRow> rows;
};

// Which rows a command writes, as --tasks, --frame-list and --annotations say: the tasks, and
// per task the official frame list (exactly its rows) or the annotation folder (one row per
// annotated frame) that gives its rows. A task with neither gets its rows from the crops.
struct RowsOptions {
  std::vector<Task> tasks;                            // empty: the command's default
  std::map<Task, std::filesystem::path> frame_lists;  // official test example files
  std::map<Task, std::filesystem::path> annotations;  // `*_Set` folders
};

// The rows `task` gets from its frame list or annotation folder in `options`, every video
// included; nothing when it has neither. Throws Error(kInput) for an unreadable list or folder.
std::optional<TaskRows> listed_rows(const RowsOptions& options, Task task);

// What to index.
struct IndexRequest {
  std::filesystem::path crops;
  RowsOptions rows;                 // rows.tasks: the tasks to produce rows for
  std::vector<std::string> videos;  // subset; empty = all
};

// The indexed run.
struct VideoIndex {
  std::vector<VideoEntry> videos;  // sorted by name
  std::map<Task, TaskRows> rows;
  long total_frames() const;
  long total_crops() const;
};

// --shard K/N: which part of a run this process handles. The units are videos, or with `run
// --videos --faces N` video files (each with all its people); every shard sorts the same list.
struct Shard {
  int index = 1;  // K, from 1
  int count = 1;  // N; 1: the whole run
  // Whether the unit at `position` of the sorted list is this shard's: positions K-1, K-1+N, ...
  bool holds(size_t position) const { return count <= 1 || static_cast<int>(position % count) == index - 1; }
};

// Keeps the videos of `index` at this shard's positions (they are sorted by name), and their rows.
void keep_shard(VideoIndex& index, Shard shard);

// Builds the index. Throws Error(kInput) for unreadable lists, a subset naming unknown or invalid
// videos, a crops folder that cannot be listed or holds a folder whose name is not a valid video
// name (when rows come from the crops), or when no video has a single crop (a wrong --crops
// folder). A video folder that cannot be listed sets that video's folder_error. Oddities that
// leave a well-defined result (stray files, crops past the last frame, missing video folders,
// hidden entries) are logged as warnings.
VideoIndex build_video_index(const IndexRequest& request);

// Rows `video/00001.jpg ... video/<frames>` for every video, videos in name order.
std::vector<FrameRow> rows_for_counts(const std::map<std::string, long>& counts);

// The frames of one video folder: sorted crop files; warns about names that are not frame
// numbers, about frame-named entries that are not regular files (saying what they are) and
// about duplicate frame numbers (keeping the 5-digit name). Throws Error(kInput) naming the
// folder when it cannot be listed.
std::vector<CropFile> scan_crop_folder(const std::filesystem::path& folder);

}  // namespace abaw
