#include "abaw/frame_source.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <fstream>
#include <set>

#include <opencv2/imgcodecs.hpp>
#include <sys/stat.h>

#include "abaw/face_crop.hpp"
#include "abaw/feature_cache.hpp"
#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/runtime.hpp"
#include "ordered_queue.hpp"
#include "progress.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace abaw {

CropFolderSource::CropFolderSource(fs::path folder, PreprocessSpec spec, PreprocessPlace place, bool pinned,
                                   long long max_image_pixels)
    : folder_(std::move(folder)),
      spec_(std::move(spec)),
      place_(place),
      pinned_(pinned),
      max_image_pixels_(max_image_pixels) {}

VideoIndex CropFolderSource::index(const RowsOptions& rows, const std::vector<std::string>& videos) const {
  return build_video_index(IndexRequest{folder_, rows, videos});
}

DecodedImages CropFolderSource::decode(const VideoIndex& index, const std::vector<CropItem>& items) const {
  std::vector<fs::path> files;
  files.reserve(items.size());
  for (const auto& [video, crop] : items) files.push_back(index.videos[video].crops[crop].path);
  return decode_batch(files, spec_, place_, pinned_, max_image_pixels_);
}

uint64_t CropFolderSource::input_key(const VideoEntry& video) const { return crop_files_key(video); }

fs::path CropFolderSource::location(const VideoEntry& video) const { return video_path(folder_, video.name); }

json CropFolderSource::describe(const VideoIndex& index) const {
  json record = nullptr;
  const fs::path file = folder_ / kCropRecordFile;
  if (std::ifstream in(file); in) {
    const json written = json::parse(in, nullptr, false);
    if (!written.is_object() || !written.contains("videos") || !written["videos"].is_object()) {
      spdlog::warn("{}: not a crop record abaw-infer wrote; run.json leaves it out", file.string());
    } else {
      json videos = json::object();
      for (const auto& video : index.videos) {
        if (written["videos"].contains(video.name.str()))
          videos[video.name.str()] = written["videos"][video.name.str()];
      }
      record = {{"file", fs::absolute(file).string()}, {"videos", videos}};
    }
  }
  return {{"path", fs::absolute(folder_).string()}, {"crop_record", record}};
}

CroppedVideo FrameSource::stream(const VideoEntry& video, size_t, const std::function<void(StreamedBatch&)>&) const {
  throw Error(ErrorKind::kUsage, "this frame source does not stream", location(video).string());
}

VideoFileSource::VideoFileSource(const std::vector<fs::path>& inputs, FaceFinder& finder,
                                 std::optional<fs::path> save_crops, PreprocessSpec spec, PreprocessPlace place,
                                 bool pinned)
    : inputs_(inputs),
      finder_(finder),
      save_crops_(std::move(save_crops)),
      spec_(std::move(spec)),
      place_(place),
      pinned_(pinned) {
  for (const fs::path& file : list_video_files(inputs)) {
    const std::string problem = video_name_problem(file.stem().string());
    if (problem.empty()) {
      files_.emplace(file.stem().string(), file);
    } else {
      rejected_.emplace_back(file.filename().string(), file.string() + ": video name " + problem);
      spdlog::error("{}; rename the file", rejected_.back().second);
    }
  }
  if (save_crops_) {
    std::error_code ec;
    fs::create_directories(*save_crops_, ec);
    if (ec) throw Error(ErrorKind::kOutput, "cannot create the folder: " + ec.message(), save_crops_->string());
    remove_stale_crop_staging(*save_crops_);
  }
}

VideoIndex VideoFileSource::index(const RowsOptions& rows, const std::vector<std::string>& videos) const {
  for (const auto& name : videos) VideoName::checked(name, "--only");
  const std::set<std::string> subset(videos.begin(), videos.end());
  auto wanted = [&](const std::string& video) { return subset.empty() || subset.count(video) > 0; };
  VideoIndex index;
  std::map<std::string, VideoEntry> entries;
  for (Task task : rows.tasks) {
    TaskRows task_rows;
    task_rows.task = task;
    if (auto listed = listed_rows(rows, task)) {
      task_rows = std::move(*listed);
      task_rows.rows.erase(std::remove_if(task_rows.rows.begin(), task_rows.rows.end(),
                                          [&](const FrameRow& row) { return !wanted(row.video); }),
                           task_rows.rows.end());
      for (const FrameRow& row : task_rows.rows) {
        VideoEntry& entry = entries[row.video];
        entry.name = row.video;
        long& frames = entry.task_frames[task];
        frames = std::max(frames, row.frame);
        entry.frames = std::max(entry.frames, frames);
      }
    } else {
      // Every frame the video decodes gets a row; the count is known once it has been decoded.
      task_rows.source = RowSource::kCrops;
      task_rows.origin = inputs_.empty() ? "" : inputs_.front().string();
      for (const auto& [name, file] : files_) {
        if (!wanted(name)) continue;
        VideoEntry& entry = entries[name];
        entry.name = VideoName::checked(name);
        entry.task_frames[task] = 0;
      }
    }
    if (task_rows.source != RowSource::kCrops && task_rows.rows.empty()) {
      throw Error(ErrorKind::kInput,
                  std::string("no ") + task_name(task) + " rows to predict" +
                      (subset.empty() ? "" : " for the selected videos"),
                  task_rows.origin);
    }
    index.rows[task] = std::move(task_rows);
  }
  for (const auto& name : videos) {
    if (!entries.count(name)) {
      throw Error(ErrorKind::kInput, "video '" + name + "' is neither a video file nor in a frame list");
    }
  }
  long unlisted = 0;
  for (const auto& [name, file] : files_) unlisted += wanted(name) && !entries.count(name);
  if (unlisted > 0) {
    spdlog::info("{} video file(s) are in none of the frame lists or annotations; skipped", unlisted);
  }
  for (auto& [name, entry] : entries) {
    auto file = files_.find(name);
    entry.has_folder = file != files_.end();
    if (!entry.has_folder) {
      entry.folder_error = "no video file named " + name + ".* among --videos (listed in a frame list or annotations)";
      spdlog::error("video {}: {}; it fails, the others go on", name, entry.folder_error);
    }
    index.videos.push_back(std::move(entry));
  }
  if (index.videos.empty()) throw Error(ErrorKind::kInput, "no videos to run");
  return index;
}

DecodedImages VideoFileSource::decode(const VideoIndex& index, const std::vector<CropItem>& items) const {
  (void)items;
  throw Error(ErrorKind::kUsage, "video frames are streamed, not decoded by item",
              index.videos.empty() ? "" : location(index.videos.front()).string());
}

uint64_t VideoFileSource::input_key(const VideoEntry& video) const {
  const fs::path file = location(video);
  uint64_t key = fnv1a(finder_.description.data(), finder_.description.size());
  const std::string saved = save_crops_ ? fs::absolute(*save_crops_).string() : "";
  key = fnv1a(saved.data(), saved.size(), key);
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) return key;  // opening it fails the video
  const int64_t fields[3] = {static_cast<int64_t>(info.st_size), static_cast<int64_t>(info.st_mtim.tv_sec),
                             static_cast<int64_t>(info.st_mtim.tv_nsec)};
  key = fnv1a(fields, sizeof fields, key);
  // Head and tail: a file re-encoded or cut to the same size and time stamp still changes the key.
  constexpr std::streamoff kChunk = 1 << 20;
  std::ifstream in(file, std::ios::binary);
  std::vector<char> bytes(kChunk);
  for (std::streamoff at : {std::streamoff{0}, std::max<std::streamoff>(0, info.st_size - kChunk)}) {
    in.clear();
    in.seekg(at);
    in.read(bytes.data(), kChunk);
    key = fnv1a(bytes.data(), static_cast<size_t>(in.gcount()), key);
  }
  return key;
}

fs::path VideoFileSource::location(const VideoEntry& video) const {
  auto file = files_.find(video.name.str());
  return file != files_.end() ? file->second : fs::path(video.name.str());
}

json VideoFileSource::describe(const VideoIndex& index) const {
  (void)index;
  json inputs = json::array();
  for (const fs::path& input : inputs_) inputs.push_back(fs::absolute(input).string());
  return {{"videos", inputs},
          {"faces", finder_.description},
          {"saved_crops", save_crops_ ? json(fs::absolute(*save_crops_).string()) : json(nullptr)}};
}

CroppedVideo VideoFileSource::stream(const VideoEntry& video, size_t batch_size,
                                     const std::function<void(StreamedBatch&)>& on_batch) const {
  const auto start = Clock::now();
  const fs::path file = location(video);
  VideoFaces faces(file, *finder_.detector, finder_.crop);
  std::optional<CropFolderWriter> writer;
  if (save_crops_) writer.emplace(*save_crops_, video.name);
  const std::vector<int> jpeg{cv::IMWRITE_JPEG_QUALITY, finder_.crop.jpeg_quality};
  std::string boxes = faces.boxes_header();
  // Crops cut but not yet in a batch: batches hold `batch_size` crops, as `run --crops` makes
  // them from a crop folder, so that both encode the same pixels in the same batches.
  struct Pending {
    CropFile crop;
    cv::Mat pixels;
    std::string source;  // for messages: "<file> frame <n>"
  };
  std::deque<Pending> pending;
  bool ended = false;
  double write_seconds = 0;
  auto produce = [&](size_t index) {
    if (index == 0) set_calling_thread_torch_threads(finder_.threads);  // a fresh thread per video
    StreamedBatch batch;
    const auto begin = Clock::now();
    while (pending.size() < batch_size && !ended) {
      const std::vector<FaceFrame> frames = faces.next();
      ended = frames.empty();
      const auto write_start = Clock::now();
      for (const FaceFrame& frame : frames) {
        if (writer) boxes += faces.boxes_line(frame);
        if (frame.crop.empty()) continue;
        std::vector<uint8_t> bytes;
        cv::imencode(".jpg", frame.crop, bytes, jpeg);
        fs::path where = file;
        if (writer) {
          writer->write(frame.number, bytes);
          where = video_path(*save_crops_, video.name) / format_crop_file_name(frame.number);
        }
        const std::string source = file.string() + " frame " + std::to_string(frame.number);
        pending.push_back({CropFile{frame.number, where}, decode_crop_bytes(bytes, source), source});
      }
      write_seconds += seconds_since(write_start);
    }
    std::vector<cv::Mat> images;
    std::vector<std::string> sources;
    while (!pending.empty() && images.size() < batch_size) {
      batch.crops.push_back(pending.front().crop);
      images.push_back(std::move(pending.front().pixels));
      sources.push_back(std::move(pending.front().source));
      pending.pop_front();
    }
    batch.images = preprocess_images(images, sources, spec_, place_, pinned_);
    batch.frames_expected = faces.counts().frames_expected;
    batch.seconds = seconds_since(begin);
    return batch;
  };
  {
    // Its thread uses everything above; it is joined before they go.
    OrderedQueue<StreamedBatch> queue(std::numeric_limits<size_t>::max(), 1, 2, produce);
    while (true) {
      StreamedBatch batch = *queue.next();
      if (batch.crops.empty()) break;  // the end: every crop was in a batch
      on_batch(batch);
    }
  }
  CroppedVideo counts = faces.counts();
  counts.write_seconds = write_seconds;
  counts.total_seconds = seconds_since(start);
  if (writer) {
    writer->commit(boxes);
    write_frame_counts(*save_crops_, {counts});
    write_crop_record(*save_crops_, {counts}, finder_.crop);
  }
  return counts;
}

}  // namespace abaw
