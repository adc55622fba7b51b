#include "abaw/video_index.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

// What a directory entry is, for messages about entries that are not regular files.
std::string entry_kind(const fs::directory_entry& entry) {
  std::error_code ec;
  const fs::file_status status = entry.status(ec);  // follows symbolic links
  if (ec || status.type() == fs::file_type::not_found) {
    return entry.is_symlink(ec) ? "a dangling symbolic link" : "unreadable (" + ec.message() + ")";
  }
  switch (status.type()) {
    case fs::file_type::directory:
      return "a folder";
    case fs::file_type::fifo:
      return "a FIFO";
    case fs::file_type::socket:
      return "a socket";
    case fs::file_type::block:
    case fs::file_type::character:
      return "a device";
    case fs::file_type::regular:
      return "a file";
    default:
      return "not a regular file";
  }
}

// The entries of `folder`; Error(kInput) naming `what` and the folder when it cannot be listed
// (permissions, I/O errors), instead of std::filesystem's exception.
}  // namespace

std::vector<FrameRow> rows_for_counts(const std::map<std::string, long>& counts) {
  std::vector<FrameRow> rows;
  for (const auto& [name, frames] : counts) {
    const VideoName video = VideoName::checked(name);
    for (long f = 1; f <= frames; ++f) rows.push_back({format_image_location(video, f), video, f});
  }
  return rows;
}

long VideoIndex::total_frames() const {
  long total = 0;
  for (const auto& v : videos) total += v.frames;
  return total;
}

long VideoIndex::total_crops() const {
  long total = 0;
  for (const auto& v : videos) total += static_cast<long>(v.crops.size());
  return total;
}

std::vector<CropFile> scan_crop_folder(const fs::path& folder) {
  std::vector<CropFile> crops;
  std::vector<std::string> strays, not_files;
  for (const auto& entry : list_folder(folder, "video folder")) {
    const std::string name = entry.path().filename().string();
    const auto frame = parse_crop_file_name(name);
    std::error_code ec;
    if (frame && entry.is_regular_file(ec))
      crops.push_back({*frame, entry.path()});
    else if (frame)
      not_files.push_back("'" + name + "' is " + entry_kind(entry));
    else
      strays.push_back(name);
  }
  if (!strays.empty()) {
    std::sort(strays.begin(), strays.end());
    spdlog::warn("{}: {} entr{} not named like a frame (1 to {}, .jpg/.jpeg/.png; e.g. '{}'); ignored", folder.string(),
                 strays.size(), strays.size() == 1 ? "y" : "ies", kMaxFrameNumber, strays.front());
  }
  if (!not_files.empty()) {
    std::sort(not_files.begin(), not_files.end());
    spdlog::warn("{}: {} entr{} named like a frame but not a file ({}{}); those frames are missing", folder.string(),
                 not_files.size(), not_files.size() == 1 ? "y" : "ies", not_files.front(),
                 not_files.size() > 1 ? ", ..." : "");
  }
  std::sort(crops.begin(), crops.end(), [](const CropFile& a, const CropFile& b) {
    if (a.frame != b.frame) return a.frame < b.frame;
    // The canonical 5-digit name sorts first, so it wins among duplicates.
    const bool a_canonical = a.path.filename() == format_crop_file_name(a.frame);
    const bool b_canonical = b.path.filename() == format_crop_file_name(b.frame);
    if (a_canonical != b_canonical) return a_canonical;
    return a.path < b.path;
  });
  std::vector<CropFile> unique;
  for (auto& crop : crops) {
    if (!unique.empty() && unique.back().frame == crop.frame) {
      spdlog::warn("{}: '{}' and '{}' are both frame {}; using '{}'", folder.string(),
                   unique.back().path.filename().string(), crop.path.filename().string(), crop.frame,
                   unique.back().path.filename().string());
      continue;
    }
    unique.push_back(std::move(crop));
  }
  return unique;
}

std::optional<TaskRows> listed_rows(const RowsOptions& options, Task task) {
  TaskRows rows;
  rows.task = task;
  if (auto list = options.frame_lists.find(task); list != options.frame_lists.end()) {
    rows.source = RowSource::kFrameList;
    rows.origin = list->second.string();
    rows.rows = read_frame_list(list->second, task).rows;
  } else if (auto folder = options.annotations.find(task); folder != options.annotations.end()) {
    rows.source = RowSource::kAnnotations;
    rows.origin = folder->second.string();
    rows.rows = rows_for_counts(read_annotation_folder(folder->second, task).frame_counts);
  } else {
    return std::nullopt;
  }
  return rows;
}

VideoIndex build_video_index(const IndexRequest& request) {
  std::error_code ec;
  if (!fs::is_directory(request.crops, ec)) {
    throw Error(ErrorKind::kInput, "crops folder does not exist or is not a folder", request.crops.string());
  }
  for (const auto& name : request.videos) VideoName::checked(name, "--only");
  const std::set<std::string> subset(request.videos.begin(), request.videos.end());
  auto wanted = [&](const std::string& video) { return subset.empty() || subset.count(video) > 0; };

  VideoIndex index;
  std::map<std::string, VideoEntry> videos;
  std::map<std::string, std::vector<CropFile>> scanned;  // folders scanned for the crop fallback
  std::map<std::string, std::string> unlistable;         // video -> why its folder could not be listed
  std::set<std::string> reported_empty;                  // warn once per empty folder, not per task

  for (Task task : request.rows.tasks) {
    TaskRows rows;
    rows.task = task;
    if (auto listed = listed_rows(request.rows, task)) {
      rows = std::move(*listed);
      if (!subset.empty()) {
        rows.rows.erase(
            std::remove_if(rows.rows.begin(), rows.rows.end(), [&](const FrameRow& row) { return !wanted(row.video); }),
            rows.rows.end());
      }
    } else {
      // `crop` records how many frames each video decoded; without it, the highest crop number.
      const fs::path count_file = request.crops / kFrameCountFile;
      std::map<std::string, long> counts;
      if (fs::exists(count_file)) {
        for (const auto& [video, frames] : read_frame_counts(count_file)) {
          if (wanted(video)) counts[video] = frames;
        }
        spdlog::info("{}: frame counts from {}", task_name(task), count_file.string());
      }
      bool guessed = false;
      long hidden = 0;
      for (const auto& entry : list_folder(request.crops, "crops folder")) {
        const std::string video = entry.path().filename().string();
        std::error_code ec;
        if (!entry.is_directory(ec)) continue;
        if (video.front() == '.') {  // .ipynb_checkpoints, the tool's own temporary folders
          ++hidden;
          continue;
        }
        if (!wanted(video)) continue;
        // Its name would become output file names and submission fields: refuse it up front
        // rather than write a submission `check` rejects.
        const std::string problem = video_name_problem(video);
        if (!problem.empty()) {
          throw Error(ErrorKind::kInput, "video folder name " + problem + "; rename the folder or pass --frame-list",
                      entry.path().string());
        }
        if (counts.count(video)) continue;
        if (unlistable.count(video)) continue;
        auto cached = scanned.find(video);
        if (cached == scanned.end()) {
          try {
            cached = scanned.emplace(video, scan_crop_folder(entry.path())).first;
          } catch (const Error& e) {
            // Fails this video alone (in `run`); its frame count, and so its rows, are unknown.
            unlistable[video] = e.what();
            videos[video].folder_error = e.what();
            videos[video].name = VideoName::checked(video);
            videos[video].task_frames[task] = 0;
            continue;
          }
        }
        auto& crops = cached->second;
        if (crops.empty()) {
          if (reported_empty.insert(video).second) {
            spdlog::warn(
                "{}: empty video folder (no crops); without a frame list, annotations or {} its "
                "frame count is unknown, so it gets no rows",
                entry.path().string(), kFrameCountFile);
          }
          continue;
        }
        counts[video] = crops.back().frame;
        guessed = true;
      }
      if (hidden > 0) spdlog::info("{}: {} hidden folder(s) ignored", request.crops.string(), hidden);
      if (guessed) {
        spdlog::warn(
            "{}: no frame list or annotations given; frame counts come from the highest crop number, "
            "so frames after the last crop of a video get no row",
            task_name(task));
      }
      rows.source = RowSource::kCrops;
      rows.origin = request.crops.string();
      rows.rows = rows_for_counts(counts);
    }
    if (rows.rows.empty() && unlistable.empty()) {
      throw Error(ErrorKind::kInput,
                  std::string("no ") + task_name(task) + " rows to predict" +
                      (subset.empty() ? "" : " for the selected videos"),
                  rows.origin);
    }
    std::map<std::string, long> task_counts;
    for (const auto& row : rows.rows) {
      long& count = task_counts[row.video];
      count = std::max(count, row.frame);
    }
    if (rows.source == RowSource::kFrameList) {
      // Official lists name every frame, so the largest frame is about the row count. One far past
      // it is a typo that would make a 12-crop video hours of head work (every frame is predicted).
      std::map<std::string, std::pair<long, long>> rows_and_runner_up;  // per video: rows, second-largest frame
      for (const auto& row : rows.rows) {
        auto& [row_count, runner_up] = rows_and_runner_up[row.video];
        ++row_count;
        if (row.frame < task_counts[row.video]) runner_up = std::max(runner_up, row.frame);
      }
      for (const auto& [video, frames] : task_counts) {
        const auto [row_count, runner_up] = rows_and_runner_up[video];
        if (frames > 10000 && frames > 10 * row_count) {
          spdlog::warn(
              "{}: video {} has {} rows but its largest frame is {} (the next largest is {}): a typo? Every "
              "frame up to {} is predicted",
              rows.origin, video, row_count, frames, runner_up, frames);
        }
      }
    }
    for (const auto& [video, frames] : task_counts) {
      VideoEntry& entry = videos[video];
      entry.name = VideoName::checked(video);
      entry.task_frames[task] = frames;
      if (entry.frames != 0 && entry.frames != frames) {
        spdlog::warn("{}: {} has {} frames, another task has {}; features cover the larger", video, task_name(task),
                     frames, entry.frames);
      }
      entry.frames = std::max(entry.frames, frames);
    }
    index.rows[task] = std::move(rows);
  }

  for (const auto& name : request.videos) {
    if (!videos.count(name)) {
      throw Error(ErrorKind::kInput, "video '" + name + "' is in none of the frame lists, annotations or crops");
    }
  }

  for (auto& [name, entry] : videos) {
    const fs::path folder = video_path(request.crops, entry.name);
    entry.has_folder = fs::is_directory(folder, ec);
    if (!entry.folder_error.empty()) {
      spdlog::error("{}", entry.folder_error);
    } else if (entry.has_folder) {
      auto cached = scanned.find(name);
      try {
        entry.crops = cached != scanned.end() ? std::move(cached->second) : scan_crop_folder(folder);
      } catch (const Error& e) {
        spdlog::error("{}", e.what());
        entry.folder_error = e.what();
      }
      const long frames = entry.frames;  // a structured binding cannot be captured before C++20
      const auto past_end = std::find_if(entry.crops.begin(), entry.crops.end(),
                                         [frames](const CropFile& c) { return c.frame > frames; });
      if (past_end != entry.crops.end()) {
        spdlog::warn("{}: {} crop(s) past frame {} (the video's frame count), first '{}'; ignored", folder.string(),
                     entry.crops.end() - past_end, entry.frames, past_end->path.filename().string());
        entry.crops.erase(past_end, entry.crops.end());
      }
      if (entry.crops.empty()) {
        spdlog::warn("{}: empty video folder (no crops); all {} frames are missing", folder.string(), entry.frames);
      }
    } else {
      spdlog::warn("{}: no crop folder for this video; all {} frames are missing", folder.string(), entry.frames);
    }
    index.videos.push_back(std::move(entry));
  }
  const bool some_failed = std::any_of(index.videos.begin(), index.videos.end(),
                                       [](const VideoEntry& v) { return !v.folder_error.empty(); });
  if (index.total_crops() == 0 && !some_failed) {
    throw Error(
        ErrorKind::kInput,
        "no crops found for any of the " + std::to_string(index.videos.size()) + " videos (is this the crops folder?)",
        request.crops.string());
  }
  return index;
}

void keep_shard(VideoIndex& index, Shard shard) {
  if (shard.count <= 1) return;
  std::vector<VideoEntry> mine;
  std::set<std::string> names;
  for (size_t v = 0; v < index.videos.size(); ++v) {
    if (!shard.holds(v)) continue;
    names.insert(index.videos[v].name);
    mine.push_back(std::move(index.videos[v]));
  }
  index.videos = std::move(mine);
  for (auto& [task, rows] : index.rows) {
    rows.rows.erase(std::remove_if(rows.rows.begin(), rows.rows.end(),
                                   [&](const FrameRow& row) { return names.count(row.video) == 0; }),
                    rows.rows.end());
  }
}

}  // namespace abaw
