#include "abaw/pipeline.hpp"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <future>
#include <cmath>
#include <set>

#include "abaw/error.hpp"
#include "abaw/feature_cache.hpp"
#include "abaw/frame_source.hpp"
#include "abaw/manifest.hpp"
#include "abaw/model_set.hpp"
#include "abaw/runtime.hpp"
#include "abaw/output_layout.hpp"
#include "abaw/postprocess.hpp"
#include "abaw/raw_scores.hpp"
#include "abaw/preprocess.hpp"
#include "abaw/submission.hpp"
#include "abaw/video_index.hpp"
#include "abaw/windows.hpp"
#include "abaw/writers.hpp"
#include "abaw/feature_rows.hpp"
#include "ordered_queue.hpp"
#include "progress.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace abaw {
namespace {

struct StageSeconds {
  double index = 0, load = 0, decode = 0, encode = 0, heads = 0, write = 0;
};

// What a run counted and timed: everything run.json reports beyond the options and the index.
struct RunStats {
  StageSeconds seconds;
  long crops_decoded = 0;
  long crops_unreadable = 0;
  long crops_cached = 0;   // crops whose features came from --features
  long frames_filled = 0;  // frames without a readable crop, filled by the missing_frames policy
  long videos_resumed = 0;
  size_t encoder_batches = 0;
  // run --videos: frames decoded, and seconds of the streaming thread's stages, summed over videos.
  long video_frames_decoded = 0;
  double video_decode = 0, face_detect = 0, face_landmarks = 0, face_crop = 0, crop_jpeg = 0;
  bool interrupted = false;
  std::vector<std::pair<std::string, std::string>> failures;  // video, message
};

// The encoder's output for one video, filled batch by batch until the video is complete.
struct VideoFeatures {
  FeatureRows rows;               // crops.size() rows (see Run::feature_rows)
  std::vector<uint8_t> readable;  // per crop
  long unreadable = 0;
  std::string error;  // set when the video already failed (e.g. NaN features)
};

// Set by SIGINT / SIGTERM: the run stops after the current batch. The handler then restores the
// default action, so a second signal ends the process at once.
std::atomic<bool> g_stop_requested{false};

// The model set failed to load or its checks: not one video's failure, so not an Error, which the
// per-video handlers catch. Run::execute throws `error` itself.
struct ModelsFailed {
  Error error;
};

// Thrown inside a video's head and post-processing loops when a stop was requested: a long
// video must not hold a stop past a scheduler's grace period (Slurm's is 30 s).
struct StopRequested {};

void throw_if_stop_requested() {
  if (g_stop_requested) throw StopRequested{};
}

extern "C" void request_stop(int signal_number) {
  g_stop_requested = true;
  std::signal(signal_number, SIG_DFL);
}

// Installs request_stop for the lifetime of a run and puts the previous handlers back.
class StopOnSignals {
 public:
  StopOnSignals() {
    g_stop_requested = false;
    previous_int_ = std::signal(SIGINT, request_stop);
    previous_term_ = std::signal(SIGTERM, request_stop);
  }
  ~StopOnSignals() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }

 private:
  void (*previous_int_)(int) = SIG_DFL;
  void (*previous_term_)(int) = SIG_DFL;
};

// How far the resident set may grow between heap trims (see HeapTrimmer). Measured on the default
// set: without trimming the resident set grew ~170 MB over 50 videos, all of it free memory glibc
// kept; trimming after every video instead made runs 5-60% longer.
constexpr size_t kHeapGrowthLimitBytes = size_t{256} << 20;
// The same for videos decoded in the run: the face detector's batches change shape from batch to
// batch (frames searched whole or near the face), and the heap fragments steadily. With 256 MB a
// 30-minute video peaked anywhere up to 800 MB against ~530 MB for its first 2.6 minutes; with 64
// MB it peaked at 530 MB against 485 MB, in the same time (scripts/README.md, `bench_videos.py --long`).
constexpr size_t kStreamingHeapGrowthLimitBytes = size_t{64} << 20;

std::string hex(uint64_t value) {
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(value));
  return buffer;
}

// What makes a video's outputs reusable by --resume: the encoder's key (see encoder_key), every
// head file's bytes and every setting after the encoder that changes a prediction.
uint64_t outputs_key(const Manifest& m, uint64_t encoder_key) {
  uint64_t key = encoder_key;
  std::set<std::string> heads;
  for (const auto& [task, config] : m.tasks) {
    if (!config.uses_columns()) heads.insert(config.head_file);
  }
  for (const auto& head : heads) key = hash_file(m.file(head), key);
  std::string settings = std::to_string(m.sequence.window) + "," + std::to_string(m.sequence.stride) +
                         name_of(kMergeNames, m.sequence.merge) +
                         name_of(kMissingFramesNames, m.sequence.missing_frames);
  for (const auto& [task, c] : m.tasks) {
    settings += std::string("|") + task_key(task) + head_description(c) + name_of(kActivationNames, c.activation) +
                "," + std::to_string(c.mean_filter) + "," + std::to_string(c.mode_filter);
    for (int i : c.class_map) settings += "," + std::to_string(i);
    for (float t : c.thresholds) settings += "," + std::to_string(t);
  }
  return fnv1a(settings.data(), settings.size(), key);
}

// One encoder batch, decoded and preprocessed (on a decode thread).
struct DecodedBatch {
  std::vector<CropItem> items;      // per image
  torch::Tensor images;             // see DecodedImages; pinned when the model is on CUDA
  std::vector<std::string> errors;  // per item: "" or why it could not be decoded
  double seconds = 0;
};

std::vector<Task> resolve_tasks(const RunOptions& options, const Manifest& manifest) {
  std::vector<Task> tasks = options.rows.tasks;
  if (tasks.empty()) {
    for (Task task : all_tasks()) {
      if (options.rows.frame_lists.count(task) || options.rows.annotations.count(task)) tasks.push_back(task);
    }
  }
  if (tasks.empty()) {
    for (const auto& [task, config] : manifest.tasks) tasks.push_back(task);
  }
  std::string provided;
  for (const auto& [task, config] : manifest.tasks)
    provided += (provided.empty() ? "" : ", ") + std::string(task_key(task));
  for (Task task : tasks) {
    if (!manifest.tasks.count(task)) {
      throw Error(
          ErrorKind::kUsage,
          std::string("the model set does not provide task ") + task_key(task) + " (it provides: " + provided + ")",
          manifest.folder.string());
    }
  }
  for (const auto& [task, file] : options.rows.frame_lists) {
    if (std::find(tasks.begin(), tasks.end(), task) == tasks.end()) {
      spdlog::warn("{}: frame list for {}, which is not among --tasks; ignored", file.string(), task_name(task));
    }
  }
  return tasks;
}

// Removes `<name>.tmp-<pid>` files that a killed run left behind (the pid no longer runs).
void remove_stale_temp_files(const fs::path& output) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(output, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t mark = name.rfind(".tmp-");
    if (mark == std::string::npos || !it->is_regular_file()) continue;
    const std::string pid = name.substr(mark + 5);
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (fs::exists("/proc/" + pid)) continue;
    std::error_code ignored;
    fs::remove(it->path(), ignored);
  }
}

void check_output_folder(const fs::path& output) {
  std::error_code ec;
  fs::create_directories(output, ec);
  if (ec) throw Error(ErrorKind::kOutput, "cannot create the output folder: " + ec.message(), output.string());
  // Fail now rather than after hours of encoding.
  const fs::path probe = output / ".abaw-infer-write-test";
  write_file_atomically(probe, "ok\n");
  fs::remove(probe, ec);
  remove_stale_temp_files(output);
}

// run.json: what the run was asked to do (options, manifest), what it covered (the index and
// its source), what it wrote (result) and what it counted and timed (stats).
json run_summary(const RunOptions& options, const Manifest& m, const VideoIndex& index, const FrameSource& source,
                 const std::string& device, const RunResult& result, const RunStats& stats, double total_seconds) {
  json tasks = json::object();
  for (const auto& [task, rows] : index.rows) {
    const char* source = rows.source == RowSource::kFrameList     ? "frame_list"
                         : rows.source == RowSource::kAnnotations ? "annotations"
                                                                  : "crops";
    auto written = result.submissions.find(task);
    tasks[task_name(task)] = {
        {"rows", rows.rows.size()},
        {"rows_from", source},
        {"origin", rows.origin},
        {"submission", written != result.submissions.end() ? json(written->second.string()) : json(nullptr)},
        {"raw_scores", OutputLayout{options.output}.raw_scores_folder(task).string()}};
  }
  json failures = json::array();
  for (const auto& [name, message] : stats.failures) failures.push_back({{"video", name}, {"error", message}});
  const double model_seconds = stats.seconds.decode + stats.seconds.encode;
  return {
      {"tool", "abaw-infer"},
      {"version", ABAW_INFER_VERSION},
      {"model_set", {{"path", fs::absolute(m.folder).string()}, {"name", m.name}}},
      {"crops", source.describe(index)},
      {"sequence",
       {{"window", m.sequence.window},
        {"stride", m.sequence.stride},
        {"merge", name_of(kMergeNames, m.sequence.merge)},
        {"missing_frames", name_of(kMissingFramesNames, m.sequence.missing_frames)}}},
      {"libraries", runtime_versions()},
      {"device", device},
      {"precision", name_of(kPrecisionNames, m.encoder.precision)},
      {"usable_cpus", usable_cpu_count()},
      {"threads", at::get_num_threads()},
      {"decode_threads", options.compute.decode_threads},
      {"preprocess_on", name_of(kPreprocessPlaceNames, options.compute.preprocess_on)},
      {"batch_size", options.compute.batch_size},
      {"pack_batches", options.compute.pack_batches},
      {"encoder_batches", stats.encoder_batches},
      {"peak_rss_mb", peak_rss_megabytes()},
      {"tasks", tasks},
      {"videos", {{"total", index.videos.size()}, {"resumed", stats.videos_resumed}, {"failed", failures}}},
      {"interrupted", stats.interrupted},
      {"shard", std::to_string(options.shard_index) + "/" + std::to_string(options.shard_count)},
      {"frames",
       {{"total", index.total_frames()},
        {"crops", index.total_crops()},
        {"decoded", stats.crops_decoded},
        {"unreadable", stats.crops_unreadable},
        {"from_feature_cache", stats.crops_cached},
        {"filled", stats.frames_filled}}},
      {"seconds",
       {{"load_models", stats.seconds.load},
        {"index", stats.seconds.index},
        {"decode", stats.seconds.decode},
        {"encode", stats.seconds.encode},
        {"heads", stats.seconds.heads},
        {"write", stats.seconds.write},
        {"total", total_seconds}}},
      {"video_stages",
       source.streams() ? json{{"frames_decoded", stats.video_frames_decoded},
                               {"seconds",
                                {{"decode", stats.video_decode},
                                 {"detect", stats.face_detect},
                                 {"landmarks", stats.face_landmarks},
                                 {"crop", stats.face_crop},
                                 {"jpeg", stats.crop_jpeg}}}}
                        : json(nullptr)},
      {"frames_per_second",
       {{"encoder", model_seconds > 0 ? stats.crops_decoded / model_seconds : 0.0},
        {"overall", total_seconds > 0 ? index.total_frames() / total_seconds : 0.0}}},
  };
}

class Run {
 public:
  Run(const RunOptions& options, Manifest manifest, std::vector<Task> tasks, torch::Device device,
      const FrameSource& source)
      : options_(options), manifest_(std::move(manifest)), tasks_(std::move(tasks)), device_(device), source_(source) {}

  // The stages below, in order; returns what was written.
  RunResult execute(Clock::time_point start);

 private:
  // Stage 1: the videos and rows this run (or shard) handles, from frame lists, annotations and
  // crop folders.
  void plan_videos();
  // Stage 2: clears submissions a failed run must not leave behind, computes each video's key,
  // and takes what earlier work can give: finished videos (--resume), features (--features).
  void reuse_earlier_work();
  // Stage 3: decodes and encodes the crops still needed, in batches, and predicts each video as
  // soon as its features are complete. Returns the number of videos finished.
  size_t encode_and_predict();
  // Stage 3 for a source that streams (videos): each video decoded, its faces cropped and
  // encoded as they come, then predicted. Returns the number of videos finished.
  size_t stream_and_predict();
  // The rows of tasks without a frame list or annotations, once streaming told the frame counts.
  void add_decoded_rows();
  // Stage 4: the submissions of the tasks whose videos all succeeded.
  void write_submissions(RunResult& result);

  RunResult execute_stages(Clock::time_point start);
  // Loads and checks the model set on a thread of its own; models() waits for it and throws
  // ModelsFailed when it failed.
  void start_loading_models();
  ModelSet& models();
  DecodedBatch decode_batch(size_t batch_index) const;  // runs on decode threads: reads only
  void encode_batch(DecodedBatch& batch, ModelSet& models);
  void finish_video(size_t index, ModelSet& models);
  void predict_tasks(const VideoEntry& video, const VideoFeatures& features, long frames,
                     const std::vector<Task>& tasks, ModelSet& models);
  void discard_outputs(const VideoEntry& video);  // raw files and marker of an unfinished video
  std::string video_key(const VideoEntry& video) const;
  std::vector<std::string> video_keys_;  // per video, computed once: it stats every crop file
  bool resume_video(size_t index);
  // Empty rows for one video's features, spilling to the output folder past the memory limit.
  FeatureRows feature_rows() const {
    return FeatureRows(manifest_.encoder.feature_dim, options_.output,
                       static_cast<size_t>(options_.features_in_memory_mib) << 20);
  }

  const RunOptions& options_;
  const OutputLayout layout_{options_.output};
  Manifest manifest_;
  std::vector<Task> tasks_;
  torch::Device device_;
  const FrameSource& source_;
  VideoIndex index_;
  std::vector<VideoFeatures> features_;
  std::unique_ptr<FeatureCache> cache_;  // with --features
  uint64_t outputs_key_ = 0;
  std::vector<uint8_t> resumed_;                // per video: outputs of an earlier run reused (--resume)
  std::vector<uint8_t> cached_;                 // per video: features came from the cache
  std::vector<std::vector<CropSpan>> batches_;  // encoder batches (see plan_encoder_batches)
  std::future<std::pair<std::unique_ptr<ModelSet>, double>> loading_models_;  // seconds it took
  std::unique_ptr<ModelSet> models_;
  HeapTrimmer heap_trimmer_{kHeapGrowthLimitBytes};
  std::map<Task, std::map<std::string, VideoResult>> results_;
  RunStats stats_;
};

DecodedBatch Run::decode_batch(size_t batch_index) const {
  const auto start = Clock::now();
  DecodedBatch batch;
  for (const CropSpan& span : batches_[batch_index]) {
    for (size_t crop = span.begin; crop < span.end; ++crop) batch.items.emplace_back(span.video, crop);
  }
  DecodedImages decoded = source_.decode(index_, batch.items);
  batch.images = std::move(decoded.images);
  batch.errors = std::move(decoded.errors);
  batch.seconds = seconds_since(start);
  return batch;
}

void Run::encode_batch(DecodedBatch& batch, ModelSet& models) {
  const int64_t count = static_cast<int64_t>(batch.items.size());
  std::vector<int64_t> good;
  for (int64_t i = 0; i < count; ++i) {
    const auto [video, crop] = batch.items[i];
    VideoFeatures& features = features_[video];
    // A streamed video's crops grow batch by batch.
    if (features.readable.size() < index_.videos[video].crops.size()) {
      if (features.rows.dim() == 0) features.rows = feature_rows();
      features.rows.resize(index_.videos[video].crops.size());
      features.readable.resize(index_.videos[video].crops.size(), 0);
    }
    if (batch.errors[i].empty()) {
      good.push_back(i);
      continue;
    }
    ++features.unreadable;
    ++stats_.crops_unreadable;
    spdlog::warn("{}; frame treated as missing", batch.errors[i]);
  }
  stats_.crops_decoded += static_cast<long>(good.size());
  stats_.seconds.decode += batch.seconds;
  if (good.empty()) return;
  const auto& images = batch.images;
  const auto& items = batch.items;

  auto encode_start = Clock::now();
  torch::Tensor input =
      static_cast<int64_t>(good.size()) == count ? images : images.index_select(0, torch::tensor(good, torch::kLong));
  torch::Tensor output = models.encode(input);
  // encode() returns contiguous float rows on the CPU: read them in place.
  const torch::Tensor finite = torch::isfinite(output).all(1).contiguous();
  const bool* row_finite = finite.data_ptr<bool>();
  const float* rows = output.data_ptr<float>();
  const int dim = manifest_.encoder.feature_dim;
  for (size_t g = 0; g < good.size(); ++g) {
    const auto [video, crop] = items[good[g]];
    VideoFeatures& features = features_[video];
    if (!row_finite[g]) {
      if (features.error.empty()) {
        const CropFile& file = index_.videos[video].crops[crop];
        features.error = "the encoder produced NaN/Inf for frame " + std::to_string(file.frame) + " (" +
                         (file.path.empty() ? source_.location(index_.videos[video]) : file.path).string() + ")";
      }
      continue;
    }
    features.rows.set(crop, rows + g * dim);
    features.readable[crop] = 1;
  }
  stats_.seconds.encode += seconds_since(encode_start);
}

void Run::predict_tasks(const VideoEntry& video, const VideoFeatures& features, long frames,
                        const std::vector<Task>& tasks, ModelSet& models) {
  const int dim = manifest_.encoder.feature_dim;
  const SequenceConfig& sequence = manifest_.sequence;
  std::vector<uint8_t> present(frames, 0);
  std::vector<long> row_of_frame(frames, -1);  // frame index -> feature row
  for (size_t c = 0; c < video.crops.size(); ++c) {
    const long t = video.crops[c].frame - 1;
    if (t < frames && features.readable[c]) {
      present[t] = 1;
      row_of_frame[t] = static_cast<long>(c);
    }
  }
  const long present_count = std::count(present.begin(), present.end(), 1);
  stats_.frames_filled += frames - present_count;
  const bool compact = sequence.missing_frames == MissingFrames::kInterpolatePredictions;
  if (present_count == 0 && sequence.missing_frames != MissingFrames::kZeroFeature) {
    throw Error(ErrorKind::kInput,
                std::string("no readable crop in the first ") + std::to_string(frames) + " frames; missing_frames '" +
                    name_of(kMissingFramesNames, sequence.missing_frames) +
                    "' needs at least one (zero_feature would predict from zero features)",
                source_.location(video).string());
  }

  // The sequence the heads see: every frame, or only frames with a crop. Each position takes the
  // feature row of a crop, or zeros (-1); windows are filled from it one at a time, so that a
  // long video never holds its whole sequence (see --features-in-memory).
  const long length = compact ? present_count : frames;
  std::vector<long> sequence_rows(length, -1);
  if (compact) {
    long r = 0;
    for (long t = 0; t < frames; ++t) {
      if (present[t]) sequence_rows[r++] = row_of_frame[t];
    }
  } else if (present_count > 0) {
    std::vector<long> source(frames);
    if (sequence.missing_frames == MissingFrames::kNearestFeature) {
      source = nearest_present(present);
    } else {
      for (long t = 0; t < frames; ++t) source[t] = present[t] ? t : -1;
    }
    for (long t = 0; t < frames; ++t) {
      if (source[t] >= 0) sequence_rows[t] = row_of_frame[source[t]];
    }
  }
  auto window_features = [&](const Window& window) {
    torch::Tensor values = torch::zeros({window.size(), dim});
    float* out = values.data_ptr<float>();
    for (long t = window.begin; t < window.end; ++t) {
      if (sequence_rows[t] >= 0) features.rows.get(sequence_rows[t], out + (t - window.begin) * dim);
    }
    return values;
  };

  auto heads_start = Clock::now();
  std::map<Task, WindowMerger> mergers;
  for (Task task : tasks) mergers.emplace(task, WindowMerger(length, task_width(task)));
  // A video of hundreds of thousands of frames spends tens of seconds here.
  Progress progress(length, "video " + video.name.str() + " heads:", "frames", true);
  long progress_frame = 0;
  for (const Window& window : plan_windows(length, sequence)) {
    throw_if_stop_requested();
    progress.advance(window.end - std::max(window.begin, progress_frame));  // windows may overlap
    progress_frame = std::max(progress_frame, window.end);
    auto scores = models.run_heads(window_features(window), tasks);
    for (Task task : tasks) {
      const torch::Tensor& s = scores.at(task);
      if (!torch::isfinite(s).all().item<bool>()) {
        throw Error(ErrorKind::kRuntime,
                    std::string("the ") + task_name(task) + " head produced NaN/Inf in frames " +
                        std::to_string(window.begin + 1) + ".." + std::to_string(window.end) +
                        (compact ? " (of the frames with crops)" : ""),
                    manifest_
                        .file(manifest_.tasks.at(task).uses_columns() ? manifest_.encoder.file
                                                                      : manifest_.tasks.at(task).head_file)
                        .string());
      }
      mergers.at(task).add(window, s.data_ptr<float>());
    }
  }
  stats_.seconds.heads += seconds_since(heads_start);

  auto write_start = Clock::now();
  for (Task task : tasks) {
    throw_if_stop_requested();
    VideoResult result;
    result.raw = ScoreMatrix{length, task_width(task), mergers.at(task).finish()};
    if (compact) result.raw = interpolate_missing(result.raw, present);
    result.has_crop = present;
    result.predicted = finalize_predictions(manifest_.tasks.at(task), result.raw);
    throw_if_stop_requested();
    write_raw_scores(layout_.raw_scores(task, video.name), task, result, Durability::kProcessKill);
    result.raw = ScoreMatrix{};  // the submission needs only the final values
    results_[task][video.name] = std::move(result);
  }
  stats_.seconds.write += seconds_since(write_start);
}

std::string Run::video_key(const VideoEntry& video) const {
  std::string text = video.name.str();
  for (const auto& [task, frames] : video.task_frames)
    text += std::string(",") + task_key(task) + std::to_string(frames);
  return hex(fnv1a(text.data(), text.size(), source_.input_key(video) ^ outputs_key_));
}

bool Run::resume_video(size_t index) {
  const VideoEntry& video = index_.videos[index];
  std::ifstream marker(layout_.done_marker(video.name));
  std::string key;
  if (!(marker >> key) || key != video_keys_[index]) return false;
  std::map<Task, VideoResult> loaded;
  for (const auto& [task, frames] : video.task_frames) {
    const fs::path raw = layout_.raw_scores(task, video.name);
    if (!fs::exists(raw)) return false;
    VideoResult result;
    // Raw files are not synced to disk (Durability::kProcessKill): after a power loss one may be
    // empty or cut although its marker survived. A cut file misses lines (frame count), has an
    // unparsable line or lacks its final newline; such a video is computed again.
    try {
      result.raw = read_raw_scores(raw, task);
      std::ifstream tail(raw, std::ios::binary | std::ios::ate);
      char last = 0;
      if (!tail.seekg(-1, std::ios::end) || !tail.get(last) || last != '\n') {
        throw Error(ErrorKind::kInput, "does not end with a newline (cut short?)", raw.string());
      }
    } catch (const Error& e) {
      spdlog::warn("--resume: {}; video {} is computed again", e.what(), video.name.str());
      return false;
    }
    // A streamed video's frame count, when no list gives it, is the one it was predicted with.
    const bool count_unknown = frames == 0 && source_.streams();
    if (result.raw.frames != frames && !count_unknown) return false;
    result.predicted = finalize_predictions(manifest_.tasks.at(task), result.raw);
    result.raw = ScoreMatrix{};
    loaded[task] = std::move(result);
  }
  VideoEntry& entry = index_.videos[index];
  for (auto& [task, result] : loaded) {
    long& frames = entry.task_frames[task];
    if (frames == 0) frames = static_cast<long>(result.predicted.frames);
    entry.frames = std::max(entry.frames, frames);
    results_[task][video.name] = std::move(result);
  }
  return true;
}

void Run::discard_outputs(const VideoEntry& video) {
  for (Task task : tasks_) {
    results_[task].erase(video.name);
    std::error_code ec;  // a raw file from an earlier run must not pass as this run's
    fs::remove(layout_.raw_scores(task, video.name), ec);
  }
  std::error_code ec;
  fs::remove(layout_.done_marker(video.name), ec);
}

void Run::finish_video(size_t index, ModelSet& models) {
  if (resumed_[index]) return;
  const VideoEntry& video = index_.videos[index];
  VideoFeatures& features = features_[index];
  try {
    // Reported by the index already; failed here so the others finish and the exit code says so.
    if (!video.folder_error.empty()) throw Error(ErrorKind::kInput, video.folder_error);
    if (!features.error.empty()) throw Error(ErrorKind::kRuntime, features.error);
    if (cache_ && !cached_[index]) {
      if (features.readable.empty()) features.readable.assign(video.crops.size(), 0);  // no crops at all
      if (features.rows.dim() == 0) features.rows = feature_rows();
      features.rows.resize(video.crops.size());
      cache_->store(video, source_.input_key(video), features.rows, features.readable);
    }
    // Tasks that list this video, grouped by frame count so each group shares head calls.
    std::map<long, std::vector<Task>> groups;
    for (Task task : tasks_) {
      auto it = video.task_frames.find(task);
      if (it != video.task_frames.end()) groups[it->second].push_back(task);
    }
    for (const auto& [frames, tasks] : groups) predict_tasks(video, features, frames, tasks, models);
    // Written last: its presence says every raw file of this video is complete (--resume).
    write_file_atomically(layout_.done_marker(video.name), video_keys_[index] + "\n", Durability::kProcessKill);
  } catch (const StopRequested&) {
    spdlog::info("video {}: stopped during its heads; it is computed again with --resume", video.name.str());
    stats_.interrupted = true;
    discard_outputs(video);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kOutput) throw;  // a full disk fails every later video too
    spdlog::error("video {} failed: {}", video.name.str(), e.what());
    stats_.failures.emplace_back(video.name, e.what());
    discard_outputs(video);
  }
  features = VideoFeatures{};  // bounded memory: a finished video's features are dropped
  heap_trimmer_.trim_if_grown();
}

void Run::start_loading_models() {
  // On the main thread's LibTorch threads, as if it loaded them itself.
  const int threads = at::get_num_threads();
  loading_models_ = std::async(std::launch::async, [manifest = manifest_, device = device_, threads] {
    set_calling_thread_torch_threads(threads);
    const auto start = Clock::now();
    auto models = std::make_unique<ModelSet>(manifest, device);
    // `info`'s checks: an encoder or head that does not match the manifest (feature width, class
    // map past the head's outputs, a dict without the key) fails with exit 4 before the first
    // batch is encoded, not in every video after the crops were read.
    models->self_check(std::min<long>(manifest.sequence.window, 16));
    return std::make_pair(std::move(models), seconds_since(start));
  });
}

ModelSet& Run::models() {
  if (!models_) {
    std::pair<std::unique_ptr<ModelSet>, double> loaded;
    try {
      loaded = loading_models_.get();
    } catch (const Error& e) {
      throw ModelsFailed{e};  // past the per-video handlers: the whole run fails, as before loading
    }
    auto& [models, seconds] = loaded;
    models_ = std::move(models);
    stats_.seconds.load = seconds;
    // Growth counts from the loaded models.
    heap_trimmer_ = HeapTrimmer(source_.streams() ? kStreamingHeapGrowthLimitBytes : kHeapGrowthLimitBytes);
  }
  return *models_;
}

RunResult Run::execute(Clock::time_point start) {
  try {
    return execute_stages(start);
  } catch (const ModelsFailed& failed) {
    throw failed.error;
  }
}

RunResult Run::execute_stages(Clock::time_point start) {
  // From videos, the models load while the first frames are decoded and their faces found
  // (0.16 s of a 2.4 s run of the default set on a 282-frame clip). A crop folder's run waits for
  // them, so that a model set failing its checks stops it before any crop is read.
  start_loading_models();
  if (!source_.streams()) models();
  auto stage = Clock::now();
  plan_videos();
  stats_.seconds.index = seconds_since(stage);
  reuse_earlier_work();
  const size_t finished = source_.streams() ? stream_and_predict() : encode_and_predict();
  if (source_.streams()) add_decoded_rows();
  models();  // a model set that fails its checks fails the run even when no video needed it

  RunResult result;
  std::set<std::string> failed;
  for (const auto& [name, message] : stats_.failures) failed.insert(name);
  result.failed_videos.assign(failed.begin(), failed.end());
  result.interrupted = stats_.interrupted;
  result.videos_done = static_cast<long>(finished) - static_cast<long>(result.failed_videos.size());
  result.videos_total = static_cast<long>(index_.videos.size());
  auto write_start = Clock::now();
  write_submissions(result);
  stats_.seconds.write += seconds_since(write_start);
  result.summary = layout_.summary();
  write_json(result.summary,
             run_summary(options_, manifest_, index_, source_, device_.str(), result, stats_, seconds_since(start)));
  return result;
}

void Run::plan_videos() {
  RowsOptions rows = options_.rows;
  rows.tasks = tasks_;
  // Deterministic and balanced by count: every shard computes the same sorted list.
  index_ = source_.index(rows, options_.videos, Shard{options_.shard_index, options_.shard_count});
  if (options_.shard_count > 1) {
    spdlog::info("shard {}/{}: {} videos", options_.shard_index, options_.shard_count, index_.videos.size());
  }
  for (const auto& failed : source_.failed_inputs()) stats_.failures.push_back(failed);
  if (source_.streams()) {
    spdlog::info("{} videos; their frames and faces are counted as they are decoded", index_.videos.size());
    return;
  }
  spdlog::info("{} videos, {} frames, {} crops ({:.1f}% of frames have no crop)", index_.videos.size(),
               index_.total_frames(), index_.total_crops(),
               100.0 * (index_.total_frames() - index_.total_crops()) / std::max(1L, index_.total_frames()));
}

void Run::reuse_earlier_work() {
  // Submissions from an earlier run must not survive a run that cannot write them.
  for (Task task : tasks_) {
    std::error_code ec;
    fs::remove(layout_.submission(task), ec);
  }

  features_.resize(index_.videos.size());
  cached_.assign(index_.videos.size(), 0);
  resumed_.assign(index_.videos.size(), 0);
  // Hashed once: reading a ViT-L file takes about a second.
  uint64_t encoder_file_hash = hash_file(manifest_.file(manifest_.encoder.file));
  // Which crops count as readable is part of both keys: the size limit, and the corrupt-data
  // verdict that earlier versions did not make (their caches and markers are not reused).
  const std::string decoding =
      "decode: libjpeg warnings fail, max pixels " + std::to_string(options_.compute.max_image_pixels);
  encoder_file_hash = fnv1a(decoding.data(), decoding.size(), encoder_file_hash);
  const uint64_t encoder = encoder_key(manifest_, encoder_file_hash);
  outputs_key_ = outputs_key(manifest_, encoder);
  for (const auto& video : index_.videos) video_keys_.push_back(video_key(video));
  if (options_.resume) {
    long resumed = 0;
    for (size_t v = 0; v < index_.videos.size(); ++v) {
      if (resume_video(v)) {
        resumed_[v] = 1;
        ++resumed;
      }
    }
    spdlog::info("--resume: {} of {} videos already done with this model set and these options", resumed,
                 index_.videos.size());
    stats_.videos_resumed = resumed;
  }
  if (options_.features) {
    cache_ = std::make_unique<FeatureCache>(*options_.features, encoder, manifest_.encoder.feature_dim);
    for (size_t v = 0; v < index_.videos.size(); ++v) {
      if (resumed_[v]) continue;
      VideoEntry& video = index_.videos[v];
      if (!video.folder_error.empty()) continue;
      auto hit = cache_->load(video, source_.input_key(video), feature_rows(), source_.streams());
      if (!hit) continue;
      cached_[v] = 1;
      if (source_.streams()) {
        for (long frame : hit->crop_frames) video.crops.push_back({frame, {}});  // see stream_and_predict
        for (auto& [task, frames] : video.task_frames) {
          if (frames == 0) frames = hit->frames;
        }
        video.frames = std::max(video.frames, hit->frames);
      }
      features_[v].rows = std::move(hit->rows);
      features_[v].readable = std::move(hit->readable);
      features_[v].unreadable = std::count(features_[v].readable.begin(), features_[v].readable.end(), 0);
      stats_.crops_unreadable += features_[v].unreadable;
      stats_.crops_cached += static_cast<long>(index_.videos[v].crops.size());
    }
    spdlog::info("feature cache {}: {} of {} videos reused ({} crops)", cache_->folder().string(),
                 std::count(cached_.begin(), cached_.end(), 1), index_.videos.size(), stats_.crops_cached);
  }
}

size_t Run::encode_and_predict() {
  // Per video unless --pack-batches: see plan_encoder_batches for what each choice guarantees.
  std::vector<size_t> crops_to_encode_per_video(index_.videos.size(), 0);
  long crops_to_encode = 0;
  for (size_t v = 0; v < index_.videos.size(); ++v) {
    if (cached_[v] || resumed_[v]) continue;
    crops_to_encode_per_video[v] = index_.videos[v].crops.size();
    crops_to_encode += static_cast<long>(crops_to_encode_per_video[v]);
  }
  batches_ = plan_encoder_batches(crops_to_encode_per_video, static_cast<size_t>(options_.compute.batch_size),
                                  options_.compute.pack_batches);
  stats_.encoder_batches = batches_.size();
  const int decode_threads = options_.compute.decode_threads;
  Progress progress(crops_to_encode, "encoded", "crops");
  size_t finished = 0;  // videos before this one are finished
  {
    // Decode threads work ahead of the model on a bounded queue.
    OrderedQueue<DecodedBatch> queue(batches_.size(), decode_threads, static_cast<size_t>(decode_threads) + 1,
                                     [this](size_t i) { return decode_batch(i); });
    for (size_t i = 0; auto batch = queue.next(); ++i) {
      if (g_stop_requested) break;
      encode_batch(*batch, models());
      const long crops_in_batch = static_cast<long>(batch->items.size());
      batch.reset();  // its pixels are free before the resident set is measured
      // Checked per batch, not only per video: Aff-Wild2 videos run to tens of thousands of
      // frames, and the free memory glibc keeps must stay bounded inside one of them too.
      heap_trimmer_.trim_if_grown();
      progress.advance(crops_in_batch);
      // Videos before the batch's last one are complete; so is that one if the batch ends it.
      const CropSpan& last = batches_[i].back();
      const size_t done = last.end == index_.videos[last.video].crops.size() ? last.video + 1 : last.video;
      for (; finished < done && !stats_.interrupted; ++finished) finish_video(finished, models());
      if (stats_.interrupted) break;
    }
  }
  // A video stopped in its heads is not finished: `finished` counts only completed ones.
  auto stopped = [&] { return stats_.interrupted || g_stop_requested; };
  for (; finished < index_.videos.size() && !stopped(); ++finished) finish_video(finished, models());
  if (stats_.interrupted) --finished;
  stats_.interrupted = stopped();
  return finished;
}

size_t Run::stream_and_predict() {
  const size_t batch_size = static_cast<size_t>(options_.compute.batch_size);
  std::set<fs::path> files_streamed;
  size_t finished = 0;
  for (size_t v = 0; v < index_.videos.size() && !g_stop_requested; ++v) {
    VideoEntry& video = index_.videos[v];
    if (!resumed_[v] && !cached_[v] && video.folder_error.empty()) {
      std::optional<Progress> progress;
      try {
        const CroppedVideo counts = source_.stream(video, batch_size, [&](StreamedBatch& streamed) {
          if (g_stop_requested) throw StopRequested{};
          if (!progress) {
            progress.emplace(streamed.frames_expected,
                             "video " + std::to_string(v + 1) + "/" + std::to_string(index_.videos.size()) + " " +
                                 video.name.str() + ":",
                             "frames");
          }
          DecodedBatch batch;
          for (CropFile& crop : streamed.crops) {
            batch.items.emplace_back(v, video.crops.size());
            // A streamed crop's path (the video file's, or the saved JPEG's with --save-crops) is
            // not needed past here: kept with its parsed parts (~0.4 KB), it made memory grow
            // with the video's length.
            video.crops.push_back({crop.frame, {}});
          }
          batch.images = std::move(streamed.images.images);
          batch.errors = std::move(streamed.images.errors);
          batch.seconds = streamed.seconds;
          const long before = video.crops.size() > batch.items.size()
                                  ? video.crops[video.crops.size() - batch.items.size() - 1].frame
                                  : 0;
          encode_batch(batch, models());
          ++stats_.encoder_batches;
          batch = DecodedBatch{};
          heap_trimmer_.trim_if_grown();
          progress->advance(video.crops.back().frame - before);
        });
        // Once per file: with --faces N each person streams the same file (its seconds count once too).
        if (files_streamed.insert(source_.location(video)).second) stats_.video_frames_decoded += counts.frames_decoded;
        stats_.video_decode += counts.decode_seconds;
        stats_.face_detect += counts.detect_seconds;
        stats_.face_landmarks += counts.landmark_seconds;
        stats_.face_crop += counts.crop_seconds;
        stats_.crop_jpeg += counts.write_seconds;
        for (auto& [task, frames] : video.task_frames) {
          if (frames == 0) {
            frames = counts.frames_decoded;
          } else if (frames > counts.frames_decoded) {
            spdlog::warn(
                "video {}: the {} rows go to frame {}, but the video decoded {} frames; the frames past its end "
                "get the missing_frames treatment",
                video.name.str(), task_name(task), frames, counts.frames_decoded);
          }
        }
        video.frames = std::max(video.frames, counts.frames_decoded);
        spdlog::info("video {}: {} frames, {} with a face, {:.1f} frames/s", video.name.str(), counts.frames_decoded,
                     counts.frames_with_face, counts.frames_decoded / std::max(counts.total_seconds, 1e-9));
      } catch (const StopRequested&) {
        spdlog::info("video {}: stopped while streaming; it is computed again with --resume", video.name.str());
        stats_.interrupted = true;
        discard_outputs(video);
        break;
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::kOutput) throw;  // a full disk fails every later video too
        spdlog::error("video {} failed: {}", video.name.str(), e.what());
        stats_.failures.emplace_back(video.name, e.what());
        discard_outputs(video);
        features_[v] = VideoFeatures{};
        ++finished;
        continue;
      }
    }
    finish_video(v, models());
    if (stats_.interrupted) break;
    ++finished;
  }
  stats_.interrupted = stats_.interrupted || g_stop_requested;
  return finished;
}

void Run::add_decoded_rows() {
  for (auto& [task, rows] : index_.rows) {
    if (rows.source != RowSource::kCrops) continue;
    std::map<std::string, long> counts;
    for (const VideoEntry& video : index_.videos) {
      auto frames = video.task_frames.find(task);
      if (frames != video.task_frames.end() && frames->second > 0) counts[video.name.str()] = frames->second;
    }
    rows.rows = rows_for_counts(counts);
  }
}

void Run::write_submissions(RunResult& result) {
  const std::set<std::string> failed(result.failed_videos.begin(), result.failed_videos.end());
  if (options_.shard_count > 1) {
    spdlog::info("shard {}/{}: raw outputs only; assemble the submissions with `abaw-infer merge`",
                 options_.shard_index, options_.shard_count);
  }
  for (Task task : tasks_) {
    if (stats_.interrupted || options_.shard_count > 1) break;  // a submission needs every video
    const TaskRows& rows = index_.rows.at(task);
    std::set<std::string> missing;
    for (const auto& video : index_.videos) {
      // Rows name every video of the task, except one whose folder could not even be listed.
      if (video.task_frames.count(task) && failed.count(video.name)) missing.insert(video.name);
    }
    // Inputs that never became videos: their rows are unknown unless a frame list gives them.
    if (rows.source == RowSource::kCrops) {
      for (const auto& [name, message] : source_.failed_inputs()) missing.insert(name);
    }
    const fs::path path = layout_.submission(task);
    if (!missing.empty()) {
      spdlog::error(
          "{} not written: {} of its videos failed (first: {}); a submission without their rows "
          "would be rejected",
          path.string(), missing.size(), *missing.begin());
      continue;
    }
    write_submission(path, task, rows.rows, results_[task]);
    result.submissions[task] = path;
    spdlog::info("wrote {} ({} rows)", path.string(), rows.rows.size());
  }
}

}  // namespace

RunResult run_pipeline(const RunOptions& options) {
  const auto start = Clock::now();
  c10::InferenceMode inference_mode;
  if (options.compute.batch_size < 1) throw Error(ErrorKind::kUsage, "--batch-size must be at least 1");
  Manifest manifest = load_manifest(options.model_set, options.compute.manifest_patch);
  if (options.window) {
    manifest.sequence.window = *options.window;
    // Keep concatenation valid when only the window changes.
    if (!options.stride && manifest.sequence.merge == Merge::kConcatenate) manifest.sequence.stride = *options.window;
  }
  if (options.stride) manifest.sequence.stride = *options.stride;
  if (options.compute.precision) manifest.encoder.precision = *options.compute.precision;
  validate_sequence(manifest.sequence,
                    "--window/--stride with the manifest's merge '" +
                        std::string(name_of(kMergeNames, manifest.sequence.merge)) + "'",
                    ErrorKind::kUsage);
  std::vector<Task> tasks = resolve_tasks(options, manifest);

  RunOptions resolved = options;
  int threads = options.compute.threads;
  if (threads == 0 && !options.video_inputs.empty()) {
    // The face models run beside the encoder on threads of their own: an encoder asking for every
    // core beside them made run --videos 35% slower on 2 cores than one core each (measured).
    threads = std::max(1, usable_cpu_count() - face_model_threads(options.faces));
  }
  resolved.compute.decode_threads = configure_runtime(threads, options.compute.decode_threads);
  const torch::Device device = resolve_device(options.compute.device);
  resolved.compute.preprocess_on =
      resolve_preprocess_place(options.compute.preprocess_on, device, manifest.encoder.preprocess);
  warn_about_slow_blas();
  spdlog::info("model set '{}' on {} ({}), {} threads, {} decode threads, batch {}{}, normalising on the {}",
               manifest.name, device.str(), name_of(kPrecisionNames, manifest.encoder.precision), at::get_num_threads(),
               resolved.compute.decode_threads, options.compute.batch_size,
               options.compute.pack_batches ? " (packed across videos)" : "",
               name_of(kPreprocessPlaceNames, resolved.compute.preprocess_on));
  check_output_folder(options.output);
  StopOnSignals stop_on_signals;
  FaceFinder finder;  // before the source, which uses it
  std::unique_ptr<FrameSource> source;
  if (!options.video_inputs.empty()) {
    FaceFinderOptions faces = options.faces;
    faces.threads = face_model_threads(faces);
    finder = make_face_finder(faces, manifest.faces, device);
    spdlog::info("faces: {}", finder.description);
    source = std::make_unique<VideoFileSource>(
        options.video_inputs, finder, options.save_crops, manifest.encoder.preprocess, resolved.compute.preprocess_on,
        device.is_cuda(), [] { return g_stop_requested.load(); },
        VideoFileSource::PeoplePassStore{options.output, options.resume, options.features});
  } else {
    source = std::make_unique<CropFolderSource>(options.crops, manifest.encoder.preprocess,
                                                resolved.compute.preprocess_on, device.is_cuda(),
                                                options.compute.max_image_pixels);
  }
  Run run(resolved, std::move(manifest), std::move(tasks), device, *source);
  return run.execute(start);
}

}  // namespace abaw
