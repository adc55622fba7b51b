#include "abaw/frame_source.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <fstream>
#include <set>
#include <tuple>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>
#include <sys/stat.h>

#include "abaw/face_crop.hpp"
#include "abaw/feature_cache.hpp"
#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/output_layout.hpp"
#include "abaw/runtime.hpp"
#include "abaw/writers.hpp"
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

VideoIndex CropFolderSource::index(const RowsOptions& rows, const std::vector<std::string>& videos, Shard shard) const {
  VideoIndex index = build_video_index(IndexRequest{folder_, rows, videos});
  keep_shard(index, shard);
  return index;
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
                                 bool pinned, std::function<bool()> stop_requested,
                                 std::optional<PeoplePassStore> people_store)
    : inputs_(inputs),
      finder_(finder),
      save_crops_(std::move(save_crops)),
      spec_(std::move(spec)),
      place_(place),
      pinned_(pinned),
      stop_requested_(std::move(stop_requested)),
      people_store_(std::move(people_store)) {
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

namespace {

// A frame list's (or annotations') rows of the videos `wanted` keeps, each video's entry in
// `entries` made or extended to the last frame the rows name.
void keep_listed_rows(TaskRows& task_rows, const std::function<bool(const std::string&)>& wanted,
                      std::map<std::string, VideoEntry>& entries) {
  task_rows.rows.erase(std::remove_if(task_rows.rows.begin(), task_rows.rows.end(),
                                      [&](const FrameRow& row) { return !wanted(row.video); }),
                       task_rows.rows.end());
  for (const FrameRow& row : task_rows.rows) {
    VideoEntry& entry = entries[row.video];
    entry.name = row.video;
    long& frames = entry.task_frames[task_rows.task];
    frames = std::max(frames, row.frame);
    entry.frames = std::max(entry.frames, frames);
  }
}

// A people pass as OutputLayout::people_pass keeps it: the key, the video's counts (not its
// seconds, spent by the run that made it) and each person's frames (number, tracker index, box,
// score, and `with_points` the five alignment points), floats exact.
json people_pass_json(const std::string& key, const CroppedVideo& counts, const std::vector<PersonFaces>& people,
                      bool with_points) {
  json found = json::array();
  for (const PersonFaces& person : people) {
    json frames = json::array();
    for (const FaceFrame& frame : person.frames) {
      const FaceBox& face = *frame.face;
      json line = {frame.number, frame.person, face.box.x, face.box.y, face.box.width, face.box.height, face.score};
      for (const cv::Point2f& point : frame.points) {
        if (!with_points) break;
        line.push_back(point.x);
        line.push_back(point.y);
      }
      frames.push_back(std::move(line));
    }
    found.push_back({{"name", person.name}, {"frames", std::move(frames)}});
  }
  return {{"key", key},
          {"frames_expected", counts.frames_expected},
          {"frames_decoded", counts.frames_decoded},
          {"frames_with_face", counts.frames_with_face},
          {"frames_with_several_faces", counts.frames_with_several_faces},
          {"frames_searched_whole", counts.frames_searched_whole},
          {"frames_interpolated", counts.frames_interpolated},
          {"min_frame_interval_ms", counts.min_frame_interval_ms},
          {"max_frame_interval_ms", counts.max_frame_interval_ms},
          {"people", std::move(found)}};
}

// The people pass kept in `file` when its key is `key`; nothing when there is none, or another
// key. Throws Error(kInput) naming the file when it cannot be parsed.
std::optional<std::vector<PersonFaces>> read_people_pass(const fs::path& file, const std::string& key,
                                                         CroppedVideo& counts) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  try {
    const json kept = json::parse(in);
    if (kept.at("key").get<std::string>() != key) return std::nullopt;
    counts.frames_expected = kept.at("frames_expected").get<long>();
    counts.frames_decoded = kept.at("frames_decoded").get<long>();
    counts.frames_with_face = kept.at("frames_with_face").get<long>();
    counts.frames_with_several_faces = kept.at("frames_with_several_faces").get<long>();
    counts.frames_searched_whole = kept.at("frames_searched_whole").get<long>();
    counts.frames_interpolated = kept.at("frames_interpolated").get<long>();
    counts.min_frame_interval_ms = kept.at("min_frame_interval_ms").get<double>();
    counts.max_frame_interval_ms = kept.at("max_frame_interval_ms").get<double>();
    std::vector<PersonFaces> people;
    for (const json& person : kept.at("people")) {
      PersonFaces faces{person.at("name").get<std::string>(), {}};
      VideoName::checked(faces.name, file.string());
      long previous = 0;
      for (const json& line : person.at("frames")) {
        constexpr size_t kWithPoints = 7 + 2 * std::tuple_size<decltype(FaceFrame::points)>::value;
        if (!line.is_array() || (line.size() != 7 && line.size() != kWithPoints)) {
          throw Error(ErrorKind::kInput,
                      "a frame of " + faces.name + " has " + std::to_string(line.size()) + " numbers", file.string());
        }
        FaceFrame frame;
        frame.number = line[0].get<long>();
        if (frame.number <= previous || frame.number > counts.frames_decoded) {
          throw Error(ErrorKind::kInput,
                      "frame " + std::to_string(frame.number) + " of " + faces.name +
                          " is out of order or past the video's frames",
                      file.string());
        }
        previous = frame.number;
        frame.person = line[1].get<int>();
        frame.face =
            FaceBox{cv::Rect2f(line[2].get<float>(), line[3].get<float>(), line[4].get<float>(), line[5].get<float>()),
                    line[6].get<float>()};
        for (size_t i = 0; i < frame.points.size() && line.size() == kWithPoints; ++i) {
          frame.points[i] = cv::Point2f(line[7 + 2 * i].get<float>(), line[8 + 2 * i].get<float>());
        }
        faces.frames.push_back(std::move(frame));
      }
      people.push_back(std::move(faces));
    }
    return people;
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kInput, std::string("not a people pass this version wrote: ") + e.what(), file.string());
  }
}

}  // namespace

VideoIndex VideoFileSource::index(const RowsOptions& rows, const std::vector<std::string>& videos, Shard shard) const {
  if (finder_.crop.max_people > 1) return index_people(rows, videos, shard);
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
      keep_listed_rows(task_rows, wanted, entries);
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
  keep_shard(index, shard);
  return index;
}

std::vector<PersonFaces> VideoFileSource::pass_people(const std::string& name, const fs::path& file,
                                                     CroppedVideo& counts) const {
  if (!people_store_) return find_people(file, *finder_.detector, finder_.crop, counts, stop_requested_);
  const VideoName video = VideoName::checked(name);
  const fs::path in_output = OutputLayout{people_store_->output}.people_pass(video);
  std::optional<fs::path> in_cache;
  if (people_store_->features) in_cache = video_path(*people_store_->features, video, ".people.json");
  const std::string key =
      fmt::format("{:016x}", file_key(file, fnv1a(finder_.description.data(), finder_.description.size())));
  std::vector<fs::path> readable;
  if (people_store_->reuse) readable.push_back(in_output);
  if (in_cache) readable.push_back(*in_cache);
  for (const fs::path& kept : readable) {
    try {
      if (auto people = read_people_pass(kept, key, counts)) {
        counts.name = name;
        counts.source = file;
        counts.detector = finder_.detector->description();
        spdlog::info("{}: its people pass is reused from {}", name, kept.string());
        if (kept != in_output) write_people_pass(in_output, key, counts, *people);
        return *people;
      }
    } catch (const Error& e) {
      spdlog::warn("{}; the people pass runs again", e.what());
    }
    counts = CroppedVideo{};
  }
  std::vector<PersonFaces> people = find_people(file, *finder_.detector, finder_.crop, counts, stop_requested_);
  if (!stop_requested_ || !stop_requested_()) {  // an unfinished pass is not kept
    write_people_pass(in_output, key, counts, people);
    if (in_cache) write_people_pass(*in_cache, key, counts, people);
  }
  return people;
}

void VideoFileSource::write_people_pass(const fs::path& file, const std::string& key, const CroppedVideo& counts,
                                        const std::vector<PersonFaces>& people) const {
  // Per file and checked when read, like the done markers: a rename survives a killed process.
  const json kept = people_pass_json(key, counts, people, finder_.crop.style == CropStyle::kAligned);
  write_file_atomically(file, kept.dump() + "\n", Durability::kProcessKill);
}

VideoIndex VideoFileSource::index_people(const RowsOptions& rows, const std::vector<std::string>& videos,
                                         Shard shard) const {
  for (const auto& name : videos) VideoName::checked(name, "--only");
  const std::set<std::string> subset(videos.begin(), videos.end());
  auto wanted = [&](const std::string& name) { return subset.empty() || subset.count(name) > 0; };
  // The rows first: they say which people, and so which video files, are needed.
  std::map<Task, std::optional<TaskRows>> listed;
  bool every_file = false;
  std::set<std::string> asked(subset.begin(), subset.end());
  for (Task task : rows.tasks) {
    listed[task] = listed_rows(rows, task);
    if (!listed[task]) {
      every_file = every_file || subset.empty();
    } else if (subset.empty()) {
      for (const FrameRow& row : listed[task]->rows) asked.insert(row.video);
    }
  }
  // The file an entry's name comes from: the longest video file name it starts with ("": none);
  // `v` can hold `v`, `v_left`, `v_right`, `v_face1`, ...
  auto file_of = [&](const std::string& name) {
    std::string file;
    for (const auto& [stem, path] : files_) {
      if ((name == stem || name.rfind(stem + "_", 0) == 0) && stem.size() > file.size()) file = stem;
    }
    return file;
  };
  // The units a shard takes, in name order: the files needed (whole, with all their people), and
  // listed names without a file.
  std::set<std::string> units;
  if (every_file) {
    for (const auto& [name, file] : files_) units.insert(name);
  }
  for (const std::string& name : asked) {
    const std::string file = file_of(name);
    units.insert(file.empty() ? name : file);
  }
  std::set<std::string> mine;  // this shard's units
  size_t position = 0;
  for (const std::string& unit : units) {
    if (shard.holds(position++)) mine.insert(unit);
  }
  auto in_shard = [&](const std::string& name) {
    if (shard.count <= 1) return true;
    const std::string file = file_of(name);
    return mine.count(file.empty() ? name : file) > 0;
  };
  auto wanted_here = [&](const std::string& name) { return wanted(name) && in_shard(name); };
  std::map<std::string, std::string> failed;  // video file name -> why
  size_t done = 0, files = 0;
  for (const std::string& unit : mine) files += files_.count(unit);
  auto stopped = [&] { return stop_requested_ && stop_requested_(); };
  // With as many threads as `crop` gives the face models, so that both find the same faces and
  // points to the last bit (the main thread's own count is the encoder's).
  const CallingThreadTorchThreads face_threads(finder_.threads);
  for (const auto& [name, file] : files_) {
    if (mine.count(name) == 0) continue;
    if (stopped()) break;
    spdlog::info("people pass, video {}/{}: {}", ++done, files, file.string());
    try {
      CroppedVideo counts;
      std::vector<PersonFaces> found = pass_people(name, file, counts);
      if (stopped()) break;  // an unfinished pass names nobody
      // Nobody: the video keeps its own name, every frame missing, as `crop --faces N` writes it.
      if (found.empty()) found.push_back({name, {}});
      std::string names;
      for (size_t p = 0; p < found.size(); ++p) {
        names += (p ? ", " : "") + found[p].name + " (" + std::to_string(found[p].frames.size()) + " frames)";
        const std::string person = found[p].name;
        people_[person] = Person{file, std::move(found[p]), counts, p == 0};
      }
      // A pass read back from its file did not count faces.
      const std::string described = counts.faces_found > 0 ? fmt::format(" (descriptors for {} of {} faces)",
                                                                         counts.faces_described, counts.faces_found)
                                                           : "";
      spdlog::info("{}: {} frames{}; {}", name, counts.frames_decoded, described, names);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kOutput) throw;
      spdlog::error("video {} failed: {}", name, e.what());
      failed[name] = e.what();
    }
  }
  VideoIndex index;
  if (stopped()) {  // the run stops before anything is encoded
    spdlog::info("stopped during the people pass");
    return index;
  }
  std::map<std::string, VideoEntry> entries;
  for (Task task : rows.tasks) {
    TaskRows task_rows;
    task_rows.task = task;
    if (listed[task]) {
      task_rows = std::move(*listed[task]);
      keep_listed_rows(task_rows, wanted_here, entries);
      if (task_rows.rows.empty() && shard.count <= 1) {
        throw Error(ErrorKind::kInput,
                    std::string("no ") + task_name(task) + " rows to predict" +
                        (subset.empty() ? "" : " for the selected videos"),
                    task_rows.origin);
      }
    } else {
      task_rows.source = RowSource::kCrops;
      task_rows.origin = inputs_.empty() ? "" : inputs_.front().string();
      for (const auto& [name, person] : people_) {
        if (!wanted(name)) continue;
        VideoEntry& entry = entries[name];
        entry.name = VideoName::checked(name);
        entry.task_frames[task] = 0;
      }
    }
    index.rows[task] = std::move(task_rows);
  }
  for (const auto& name : videos) {
    if (!entries.count(name) && in_shard(name)) {
      throw Error(ErrorKind::kInput, "video '" + name + "' is neither a person found in the videos nor in a frame list");
    }
  }
  // A video without anybody, or whose people pass failed, has no entry of its own: it fails here.
  for (const auto& [name, why] : failed) {
    if (!std::any_of(entries.begin(), entries.end(),
                     [&](const auto& e) { return e.first == name || e.first.rfind(name + "_", 0) == 0; })) {
      rejected_.emplace_back(name, why);
    }
  }
  for (auto& [name, entry] : entries) {
    entry.has_folder = people_.count(name) > 0;
    if (!entry.has_folder) {
      const std::string file = file_of(name);
      if (file.empty()) {
        entry.folder_error = "no video file for " + name + " among --videos (listed in a frame list or annotations)";
      } else if (failed.count(file)) {
        entry.folder_error = failed[file];
      } else {
        std::string found;
        for (const auto& [person, seen] : people_) {
          if (seen.file == files_.at(file)) found += (found.empty() ? "" : ", ") + person;
        }
        entry.folder_error = "no person " + name + " in " + files_.at(file).string() + " (people found: " +
                             (found.empty() ? "none" : found) + ")";
      }
      spdlog::error("video {}: {}; it fails, the others go on", name, entry.folder_error);
    }
    index.videos.push_back(std::move(entry));
  }
  if (index.videos.empty() && shard.count <= 1) throw Error(ErrorKind::kInput, "no videos to run");
  return index;
}

DecodedImages VideoFileSource::decode(const VideoIndex& index, const std::vector<CropItem>& items) const {
  (void)items;
  throw Error(ErrorKind::kUsage, "video frames are streamed, not decoded by item",
              index.videos.empty() ? "" : location(index.videos.front()).string());
}

uint64_t VideoFileSource::input_key(const VideoEntry& video) const {
  uint64_t key = fnv1a(finder_.description.data(), finder_.description.size());
  if (finder_.crop.max_people > 1) key = fnv1a(video.name.str().data(), video.name.str().size(), key);
  const std::string saved = save_crops_ ? fs::absolute(*save_crops_).string() : "";
  key = fnv1a(saved.data(), saved.size(), key);
  return file_key(location(video), key);
}

uint64_t VideoFileSource::file_key(const fs::path& file, uint64_t key) {
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
  if (auto person = people_.find(video.name.str()); person != people_.end()) return person->second.file;
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

namespace {

// A crop cut but not yet in a batch.
struct PendingCrop {
  CropFile crop;
  cv::Mat pixels;
  std::string source;  // for messages: "<file> frame <n>"
};

// The crop as `crop` writes it and `run --crops` reads it: JPEG-encoded (`jpeg` parameters),
// written into `writer` when saving crops, and decoded again in memory.
PendingCrop round_trip(const cv::Mat& crop, long frame, const fs::path& file, const std::vector<int>& jpeg,
                       CropFolderWriter* writer, const std::optional<fs::path>& saved_to, const VideoName& name) {
  std::vector<uint8_t> bytes;
  cv::imencode(".jpg", crop, bytes, jpeg);
  fs::path where = file;
  if (writer) {
    writer->write(frame, bytes);
    where = video_path(*saved_to, name) / format_crop_file_name(frame);
  }
  std::string source = file.string() + " frame " + std::to_string(frame);
  cv::Mat pixels = decode_crop_bytes(bytes, source);
  return {CropFile{frame, where}, std::move(pixels), std::move(source)};
}

// Calls `on_batch` with batches of `batch_size` crops (the last may be smaller), as `run --crops`
// batches a crop folder, so that both encode the same pixels in the same batches. The crops are
// made on a thread of their own, at most two batches ahead: `make_crops` appends some to its
// argument and returns false once it has no more.
void stream_batches(size_t batch_size, int torch_threads, const PreprocessSpec& spec, PreprocessPlace place,
                    bool pinned, const std::function<bool(std::deque<PendingCrop>&)>& make_crops,
                    const std::function<long()>& frames_expected,
                    const std::function<void(StreamedBatch&)>& on_batch) {
  std::deque<PendingCrop> pending;
  bool more = true;
  auto produce = [&](size_t index) {
    if (index == 0) set_calling_thread_torch_threads(torch_threads);  // a fresh thread per video
    StreamedBatch batch;
    const auto begin = Clock::now();
    while (pending.size() < batch_size && more) more = make_crops(pending);
    std::vector<cv::Mat> images;
    std::vector<std::string> sources;
    while (!pending.empty() && images.size() < batch_size) {
      batch.crops.push_back(pending.front().crop);
      images.push_back(std::move(pending.front().pixels));
      sources.push_back(std::move(pending.front().source));
      pending.pop_front();
    }
    batch.images = preprocess_images(images, sources, spec, place, pinned);
    batch.frames_expected = frames_expected();
    batch.seconds = seconds_since(begin);
    return batch;
  };
  // Its thread uses everything above; it is joined before they go.
  OrderedQueue<StreamedBatch> queue(std::numeric_limits<size_t>::max(), 1, 2, produce);
  while (true) {
    StreamedBatch batch = *queue.next();
    if (batch.crops.empty()) break;  // the end: every crop was in a batch
    on_batch(batch);
  }
}

}  // namespace

CroppedVideo VideoFileSource::stream(const VideoEntry& video, size_t batch_size,
                                     const std::function<void(StreamedBatch&)>& on_batch) const {
  if (finder_.crop.max_people > 1) return stream_person(video, batch_size, on_batch);
  const auto start = Clock::now();
  const fs::path file = location(video);
  VideoFaces faces(file, *finder_.detector, finder_.crop);
  std::optional<CropFolderWriter> writer;
  if (save_crops_) writer.emplace(*save_crops_, video.name);
  const std::vector<int> jpeg{cv::IMWRITE_JPEG_QUALITY, finder_.crop.jpeg_quality};
  std::string boxes = faces.boxes_header();
  double write_seconds = 0;
  stream_batches(
      batch_size, finder_.threads, spec_, place_, pinned_,
      [&](std::deque<PendingCrop>& pending) {
        const std::vector<FaceFrame> frames = faces.next();
        const auto write_start = Clock::now();
        for (const FaceFrame& frame : frames) {
          if (writer) boxes += faces.boxes_line(frame);
          if (frame.crop.empty()) continue;
          pending.push_back(
              round_trip(frame.crop, frame.number, file, jpeg, writer ? &*writer : nullptr, save_crops_, video.name));
        }
        write_seconds += seconds_since(write_start);
        return !frames.empty();
      },
      [&] { return faces.counts().frames_expected; }, on_batch);
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

CroppedVideo VideoFileSource::stream_person(const VideoEntry& video, size_t batch_size,
                                            const std::function<void(StreamedBatch&)>& on_batch) const {
  const auto start = Clock::now();
  const Person& person = people_.at(video.name.str());
  const fs::path& file = person.file;
  const std::vector<FaceFrame>& found = person.faces.frames;
  cv::VideoCapture capture;
  if (!capture.open(file.string())) throw Error(ErrorKind::kInput, "cannot open the video (no decoder for it?)", file.string());
  std::optional<CropFolderWriter> writer;
  if (save_crops_) writer.emplace(*save_crops_, video.name);
  const std::vector<int> jpeg{cv::IMWRITE_JPEG_QUALITY, finder_.crop.jpeg_quality};
  size_t next = 0;  // the next of `found`
  long decoded = 0;
  double decode_seconds = 0, crop_seconds = 0, write_seconds = 0;
  stream_batches(
      batch_size, finder_.threads, spec_, place_, pinned_,
      [&](std::deque<PendingCrop>& pending) {
        if (next == found.size()) return false;  // the rest of the video has none of this person's faces
        const FaceFrame& face = found[next];
        auto stage = Clock::now();
        // Frames before the person's next one are only grabbed: their pixels are never needed.
        while (decoded < face.number) {
          if (!capture.grab()) {
            throw Error(ErrorKind::kInput,
                        "the video ended after " + std::to_string(decoded) + " frames, before frame " +
                            std::to_string(face.number) + " where its people pass found " + video.name.str() +
                            " (did the file change?)",
                        file.string());
          }
          ++decoded;
        }
        cv::Mat frame;
        capture.retrieve(frame);
        decode_seconds += seconds_since(stage);
        stage = Clock::now();
        const cv::Mat crop = cut_face(frame, face, finder_.crop);
        crop_seconds += seconds_since(stage);
        stage = Clock::now();
        pending.push_back(round_trip(crop, face.number, file, jpeg, writer ? &*writer : nullptr, save_crops_, video.name));
        write_seconds += seconds_since(stage);
        ++next;
        return true;
      },
      [&] { return person.counts.frames_decoded; }, on_batch);
  CroppedVideo counts = person.counts;
  counts.name = video.name.str();
  counts.frames_with_face = static_cast<long>(found.size());
  if (!person.first_in_file) {  // the people pass's seconds count once per video
    counts.decode_seconds = counts.detect_seconds = counts.landmark_seconds = counts.descriptor_seconds = 0;
    counts.crop_seconds = counts.total_seconds = 0;
  }
  counts.decode_seconds += decode_seconds;
  counts.crop_seconds += crop_seconds;
  counts.write_seconds = write_seconds;
  counts.total_seconds += seconds_since(start);
  if (writer) {
    writer->commit(person_boxes_csv(found, counts.frames_decoded, finder_.crop));
    write_frame_counts(*save_crops_, {counts});
    write_crop_record(*save_crops_, {counts}, finder_.crop);
  }
  return counts;
}

}  // namespace abaw
