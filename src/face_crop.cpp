#include "abaw/face_crop.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>
#include <opencv2/videoio.hpp>

#include "abaw/annotations.hpp"
#include "abaw/error.hpp"
#include "abaw/face_models.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/writers.hpp"
#include "ordered_queue.hpp"
#include "progress.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

class HaarDetector : public FaceDetector {
 public:
  HaarDetector(const fs::path& file, int min_face) : file_(file), min_face_(min_face) {
    if (!cascade_.load(file.string())) {
      throw Error(ErrorKind::kUsage, "cannot load the Haar cascade (apt-get install opencv-data, or --cascade FILE)",
                  file.string());
    }
  }
  std::vector<FaceBox> detect(const cv::Mat& bgr) override {
    // The cascade's cost grows with the pixel count; faces in face-centred videos stay far above
    // the minimum size at 640 pixels, so HD frames are searched at that size (4-9x faster).
    const float scale = std::min(1.0f, kSearchSide / static_cast<float>(std::max(bgr.cols, bgr.rows)));
    cv::Mat gray;
    cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
    if (scale < 1.0f) cv::resize(gray, gray, cv::Size(), scale, scale, cv::INTER_AREA);
    cv::equalizeHist(gray, gray);
    std::vector<cv::Rect> found;
    std::vector<int> neighbours;
    const int min_side = std::max(8, static_cast<int>(min_face_ * scale));
    cascade_.detectMultiScale(gray, found, neighbours, 1.1, 5, 0, cv::Size(min_side, min_side));
    std::vector<FaceBox> faces;
    for (size_t i = 0; i < found.size(); ++i) {
      const cv::Rect2f box(found[i].x / scale, found[i].y / scale, found[i].width / scale, found[i].height / scale);
      faces.push_back({box, static_cast<float>(i < neighbours.size() ? neighbours[i] : 0)});
    }
    return faces;
  }
  std::string description() const override { return "haar (" + file_.string() + ")"; }

 private:
  static constexpr float kSearchSide = 640.0f;
  cv::CascadeClassifier cascade_;
  fs::path file_;
  int min_face_;
};

class YuNetDetector : public FaceDetector {
 public:
  YuNetDetector(const fs::path& file, float threshold, int min_face)
      : file_(file), threshold_(threshold), min_face_(min_face) {
    try {
      net_ = cv::dnn::readNetFromONNX(file.string());
    } catch (const cv::Exception& e) {
      throw Error(ErrorKind::kModel, std::string("cannot load YuNet ONNX: ") + e.what(), file.string());
    }
    for (int stride : kStrides) {
      for (const char* head : {"cls_", "obj_", "bbox_"}) output_names_.push_back(head + std::to_string(stride));
    }
  }

  std::vector<FaceBox> detect(const cv::Mat& bgr) override {
    // The 2023 model has a fixed 640x640 input: scale the frame to fit, pad bottom/right.
    const float scale = std::min(kInput / static_cast<float>(bgr.cols), kInput / static_cast<float>(bgr.rows));
    cv::Mat resized, padded;
    cv::resize(bgr, resized, cv::Size(std::lround(bgr.cols * scale), std::lround(bgr.rows * scale)));
    cv::copyMakeBorder(resized, padded, 0, kInput - resized.rows, 0, kInput - resized.cols, cv::BORDER_CONSTANT);
    net_.setInput(cv::dnn::blobFromImage(padded));  // BGR, 0..255, no mean
    std::vector<cv::Mat> outputs;
    try {
      net_.forward(outputs, output_names_);
    } catch (const cv::Exception& e) {
      throw Error(ErrorKind::kModel, std::string("YuNet forward failed (not the 2023 layout?): ") + e.what(),
                  file_.string());
    }
    std::vector<cv::Rect2d> boxes;
    std::vector<float> scores;
    for (size_t s = 0; s < std::size(kStrides); ++s) {
      const int stride = kStrides[s], columns = kInput / stride;
      const float* cls = outputs[3 * s].ptr<float>();
      const float* obj = outputs[3 * s + 1].ptr<float>();
      const float* bbox = outputs[3 * s + 2].ptr<float>();
      const int cells = columns * columns;
      for (int i = 0; i < cells; ++i) {
        const float score = std::sqrt(std::clamp(cls[i], 0.0f, 1.0f) * std::clamp(obj[i], 0.0f, 1.0f));
        if (score < threshold_) continue;
        const float cx = (i % columns + bbox[4 * i]) * stride, cy = (i / columns + bbox[4 * i + 1]) * stride;
        const float w = std::exp(bbox[4 * i + 2]) * stride, h = std::exp(bbox[4 * i + 3]) * stride;
        boxes.emplace_back((cx - w / 2) / scale, (cy - h / 2) / scale, w / scale, h / scale);
        scores.push_back(score);
      }
    }
    std::vector<int> keep;
    cv::dnn::NMSBoxes(boxes, scores, threshold_, 0.3f, keep);
    std::vector<FaceBox> faces;
    for (int k : keep) {
      if (boxes[k].width < min_face_ && boxes[k].height < min_face_) continue;
      faces.push_back({cv::Rect2f(boxes[k]), scores[k]});
    }
    return faces;
  }
  std::string description() const override { return "yunet (" + file_.string() + ")"; }

 private:
  static constexpr int kInput = 640;
  static constexpr int kStrides[3] = {8, 16, 32};
  cv::dnn::Net net_;
  fs::path file_;
  float threshold_;
  int min_face_;
  std::vector<std::string> output_names_;
};

constexpr char kStagingMark[] = ".cropping-";

// Puts the finished `staging` folder at `target`, in one step when the file system can swap two
// names (renameat2 RENAME_EXCHANGE), so `target` is never missing or half-old; the earlier
// folder, now at `staging`, is then removed.
void replace_folder(const fs::path& staging, const fs::path& target) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(target, ec))) {
    fs::rename(staging, target, ec);
    if (ec) throw Error(ErrorKind::kOutput, "cannot move the new crops into place: " + ec.message(), target.string());
    return;
  }
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
      throw Error(ErrorKind::kOutput, std::string("cannot move the new crops into place: ") + std::strerror(errno),
                  target.string());
    }
    // No exchange on this file system: two renames, with a moment where `target` is absent.
    const fs::path old = staging.string() + ".old";
    fs::rename(target, old, ec);
    if (!ec) fs::rename(staging, target, ec);
    if (ec) throw Error(ErrorKind::kOutput, "cannot move the new crops into place: " + ec.message(), target.string());
    fs::remove_all(old, ec);
    return;
  }
  fs::remove_all(staging, ec);
  if (ec) spdlog::warn("{}: could not remove the earlier crops: {}", staging.string(), ec.message());
}

// Writes a whole file without a temporary name: crops go into a staging folder that only takes
// its final name once every file in it is complete and flushed.
void write_plain_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) throw Error(ErrorKind::kOutput, std::string("cannot create: ") + std::strerror(errno), path.string());
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), file);
  if (std::fclose(file) != 0 || written != bytes.size()) {
    throw Error(ErrorKind::kOutput, std::string("cannot write: ") + std::strerror(errno), path.string());
  }
}

// Flushes every file written into `folder` (one syncfs for the file system instead of one fsync
// per crop, which cost more than cropping a frame).
void flush_folder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0 || ::syncfs(fd) != 0) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    throw Error(ErrorKind::kOutput, std::string("cannot flush the crops to disk: ") + std::strerror(error),
                folder.string());
  }
  ::close(fd);
}

// The faces of a batch of frames `first`, `first + 1`, ...: near the tracked face where the
// detector can look there cheaply, in the whole frame every `detect_every` frames and wherever
// nothing was found near it.
std::vector<std::vector<FaceBox>> find_faces(FaceDetector& detector, const std::vector<cv::Mat>& frames, long first,
                                             const std::optional<cv::Rect2f>& tracked, int detect_every,
                                             long& last_whole_frame, long& searched_whole) {
  std::vector<std::vector<FaceBox>> faces(frames.size());
  std::vector<size_t> whole;
  if (detect_every > 1 && tracked && detector.detects_near()) {
    std::vector<size_t> near;
    long scheduled = last_whole_frame;
    for (size_t i = 0; i < frames.size(); ++i) {
      const long number = first + static_cast<long>(i);
      if (number - scheduled >= detect_every) {
        whole.push_back(i);
        scheduled = number;
      } else {
        near.push_back(i);
      }
    }
    std::vector<cv::Mat> near_frames;
    for (size_t i : near) near_frames.push_back(frames[i]);
    const auto found = detector.detect_near(near_frames, std::vector<cv::Rect2f>(near.size(), *tracked));
    for (size_t j = 0; j < near.size(); ++j) {
      if (found[j].empty()) {
        whole.push_back(near[j]);
      } else {
        faces[near[j]] = found[j];
      }
    }
    std::sort(whole.begin(), whole.end());
  } else {
    for (size_t i = 0; i < frames.size(); ++i) whole.push_back(i);
  }
  if (whole.empty()) return faces;
  std::vector<cv::Mat> whole_frames;
  for (size_t i : whole) whole_frames.push_back(frames[i]);
  const auto found = detector.detect_batch(whole_frames);
  searched_whole += static_cast<long>(whole.size());
  for (size_t j = 0; j < whole.size(); ++j) faces[whole[j]] = found[j];
  last_whole_frame = std::max(last_whole_frame, first + static_cast<long>(whole.back()));
  return faces;
}

}  // namespace

float box_overlap(const cv::Rect2f& a, const cv::Rect2f& b) {
  const float intersection = (a & b).area();
  const float united = a.area() + b.area() - intersection;
  return united > 0 ? intersection / united : 0.0f;
}

std::unique_ptr<FaceDetector> make_haar_detector(const fs::path& cascade_file, int min_face) {
  const fs::path file = cascade_file.empty()
                            ? fs::path("/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml")
                            : cascade_file;
  return std::make_unique<HaarDetector>(file, min_face);
}

std::unique_ptr<FaceDetector> make_yunet_detector(const fs::path& onnx_file, float score_threshold, int min_face) {
  std::error_code ec;
  if (!fs::is_regular_file(onnx_file, ec))
    throw Error(ErrorKind::kUsage, "YuNet model file not found", onnx_file.string());
  return std::make_unique<YuNetDetector>(onnx_file, score_threshold, min_face);
}

std::optional<FaceBox> FaceTrack::pick(const std::vector<FaceBox>& faces) {
  if (faces.empty()) return std::nullopt;
  const FaceBox* chosen = nullptr;
  if (previous_) {
    float best_overlap = 0;
    for (const auto& face : faces) {
      const float o = box_overlap(face.box, *previous_);
      if (o > best_overlap) {
        best_overlap = o;
        chosen = &face;
      }
    }
    if (!chosen) {
      const cv::Point2f centre = (previous_->tl() + previous_->br()) * 0.5f;
      const float reach = 2.0f * std::max(previous_->width, previous_->height);
      float best_distance = reach;
      for (const auto& face : faces) {
        const cv::Point2f c = (face.box.tl() + face.box.br()) * 0.5f;
        const float distance = std::hypot(c.x - centre.x, c.y - centre.y);
        if (distance < best_distance) {
          best_distance = distance;
          chosen = &face;
        }
      }
    }
  }
  if (!chosen) {
    chosen = &*std::max_element(faces.begin(), faces.end(),
                                [](const FaceBox& a, const FaceBox& b) { return a.box.area() < b.box.area(); });
  }
  previous_ = chosen->box;
  return *chosen;
}

cv::Mat square_crop(const cv::Mat& bgr, const cv::Rect2f& box, float margin, int size) {
  const float side = std::max(box.width, box.height) * (1.0f + margin);
  const float cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  const cv::Rect square(static_cast<int>(std::lround(cx - side / 2)), static_cast<int>(std::lround(cy - side / 2)),
                        std::max(1, static_cast<int>(std::lround(side))),
                        std::max(1, static_cast<int>(std::lround(side))));
  const cv::Rect inside = square & cv::Rect(0, 0, bgr.cols, bgr.rows);
  cv::Mat canvas(square.size(), bgr.type(), cv::Scalar::all(0));
  if (inside.area() > 0) bgr(inside).copyTo(canvas(inside - square.tl()));
  cv::Mat out;
  cv::resize(canvas, out, cv::Size(size, size), 0, 0, square.width > size ? cv::INTER_AREA : cv::INTER_CUBIC);
  return out;
}

void remove_stale_crop_staging(const fs::path& output) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(output, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t mark = name.rfind(kStagingMark);
    if (name.front() != '.' || mark == std::string::npos) continue;
    std::string pid = name.substr(mark + std::strlen(kStagingMark));
    if (pid.size() > 4 && pid.compare(pid.size() - 4, 4, ".old") == 0) pid.resize(pid.size() - 4);
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (fs::exists("/proc/" + pid)) continue;  // another crop into this folder is still running
    std::error_code ignored;
    fs::remove_all(it->path(), ignored);
  }
}

CroppedVideo crop_video(const fs::path& video, FaceDetector& detector, const CropOptions& options) {
  CroppedVideo result;
  const VideoName name = VideoName::checked(video.stem().string(), video.string());
  result.name = name;
  result.source = video;
  result.detector = detector.description();
  std::error_code size_error;
  if (fs::file_size(video, size_error) == 0 && !size_error) {
    throw Error(ErrorKind::kInput, "the video file is empty (0 bytes)", video.string());
  }
  cv::VideoCapture capture(video.string());
  if (!capture.isOpened()) throw Error(ErrorKind::kInput, "cannot open the video (no decoder for it?)", video.string());
  const fs::path target = video_path(options.output, name);
  const fs::path folder = options.output / ("." + name.str() + kStagingMark + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(folder, ec);
  fs::create_directories(folder, ec);
  if (ec) throw Error(ErrorKind::kOutput, "cannot create folder: " + ec.message(), folder.string());
  // Whatever stops this video, its staging folder goes; the earlier crops stay as they were.
  struct RemoveUnlessKept {
    fs::path folder;
    bool keep = false;
    ~RemoveUnlessKept() {
      std::error_code ignored;
      if (!keep) fs::remove_all(folder, ignored);
    }
  } staging{folder};
  const double expected = capture.get(cv::CAP_PROP_FRAME_COUNT);  // off by one at times
  result.frames_expected = expected > 0 && expected < 1e9 ? static_cast<long>(expected) : 0;
  if (options.style == CropStyle::kAligned && !options.landmarks) {
    throw Error(ErrorKind::kUsage, "aligned crops need the landmark net (face models)");
  }
  const bool aligned = options.style == CropStyle::kAligned;
  const std::vector<int> jpeg{cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality};
  std::string boxes = "frame,x,y,width,height,score";
  if (aligned) {
    boxes +=
        ",left_eye_x,left_eye_y,right_eye_x,right_eye_y,nose_x,nose_y,mouth_left_x,mouth_left_y,mouth_right_x,"
        "mouth_right_y";
  }
  boxes += "\n";
  const std::string no_face(aligned ? 15 : 5, ',');
  FaceTrack track;
  long last_whole_frame = -kMaxFrameNumber;  // the last frame searched whole
  const auto start = Clock::now();
  auto last_log = start;
  // Decoding runs ahead on its own thread, at most two batches: memory stays bounded however
  // long the video, and the detector never waits for the decoder while a batch is ready.
  struct DecodedFrames {
    std::vector<cv::Mat> frames;
    double seconds = 0;
  };
  const size_t batch_frames = static_cast<size_t>(std::max(1, options.batch_frames));
  OrderedQueue<DecodedFrames> decoded(std::numeric_limits<size_t>::max(), 1, 2, [&](size_t) {
    DecodedFrames batch;
    const auto begin = Clock::now();
    while (batch.frames.size() < batch_frames) {
      cv::Mat frame;  // a fresh buffer per frame: the batch keeps them all
      if (!capture.read(frame)) break;
      batch.frames.push_back(std::move(frame));
    }
    batch.seconds = seconds_since(begin);
    return batch;
  });
  while (true) {
    DecodedFrames batch = *decoded.next();
    if (batch.frames.empty()) break;
    result.decode_seconds += batch.seconds;
    const long first = result.frames_decoded + 1;
    result.frames_decoded += static_cast<long>(batch.frames.size());
    if (result.frames_decoded > kMaxFrameNumber) {
      throw Error(
          ErrorKind::kInput,
          "more than " + std::to_string(kMaxFrameNumber) + " frames: past the frame numbers crop names can carry",
          video.string());
    }
    auto stage = Clock::now();
    const auto faces = find_faces(detector, batch.frames, first, track.last(), options.detect_every, last_whole_frame,
                                  result.frames_searched_whole);
    result.detect_seconds += seconds_since(stage);
    std::vector<std::optional<FaceBox>> picked;
    std::vector<size_t> frame_of;
    std::vector<cv::Rect2f> picked_boxes;
    for (size_t i = 0; i < batch.frames.size(); ++i) {
      if (faces[i].size() > 1) ++result.frames_with_several_faces;
      picked.push_back(track.pick(faces[i]));
      if (picked.back()) {
        frame_of.push_back(i);
        picked_boxes.push_back(picked.back()->box);
      }
    }
    std::vector<FaceLandmarks> landmarks;
    if (aligned) {
      stage = Clock::now();
      landmarks = options.landmarks->landmarks(batch.frames, frame_of, picked_boxes);
      result.landmark_seconds += seconds_since(stage);
    }
    stage = Clock::now();
    size_t face_index = 0;
    for (size_t i = 0; i < batch.frames.size(); ++i) {
      const long number = first + static_cast<long>(i);
      boxes += std::to_string(number);
      if (!picked[i]) {
        boxes += no_face + "\n";
        continue;
      }
      const FaceBox& face = *picked[i];
      ++result.frames_with_face;
      std::vector<uint8_t> bytes;
      const cv::Mat crop = aligned ? aligned_crop(batch.frames[i], landmarks[face_index], options.size, options.margin)
                                   : square_crop(batch.frames[i], face.box, options.margin, options.size);
      cv::imencode(".jpg", crop, bytes, jpeg);
      write_plain_file(folder / format_crop_file_name(number), bytes);
      char line[96];
      std::snprintf(line, sizeof line, ",%.1f,%.1f,%.1f,%.1f,%.3f", face.box.x, face.box.y, face.box.width,
                    face.box.height, face.score);
      boxes += line;
      if (aligned) {
        for (const cv::Point2f& p : five_points(landmarks[face_index])) {
          std::snprintf(line, sizeof line, ",%.1f,%.1f", p.x, p.y);
          boxes += line;
        }
      }
      boxes += "\n";
      ++face_index;
    }
    result.write_seconds += seconds_since(stage);
    const auto now = Clock::now();
    if (std::chrono::duration<double>(now - last_log).count() >= 3.0) {
      last_log = now;
      const double elapsed = std::chrono::duration<double>(now - start).count();
      spdlog::info("{}: frame {}/~{:.0f}, {:.1f} frames/s", result.name, result.frames_decoded, expected,
                   result.frames_decoded / elapsed);
    }
  }
  if (result.frames_decoded == 0) throw Error(ErrorKind::kInput, "the video yielded no frame", video.string());
  // Containers may count one frame more than decodes; more than that is a file that ends early.
  if (result.frames_expected > 0 && result.frames_decoded + 1 < result.frames_expected) {
    spdlog::warn(
        "{}: the video ended after {} of the {} frames its container announces (truncated or damaged "
        "file?); frame_counts.csv records {}",
        video.string(), result.frames_decoded, result.frames_expected, result.frames_decoded);
  }
  if (result.frames_with_face == 0) {
    spdlog::warn(
        "{}: no face found in any of its {} frames: its folder is empty, and `run` gives every frame the "
        "model set's missing-frame treatment",
        video.string(), result.frames_decoded);
  }
  flush_folder(folder);
  replace_folder(folder, target);
  staging.keep = true;
  write_file_atomically(video_path(options.output, name, ".boxes.csv"), boxes);
  const double elapsed = seconds_since(start);
  result.total_seconds = elapsed;
  spdlog::info(
      "{}: {} frames ({} searched whole), {} with a face ({} with several: the tracked face was kept), "
      "{:.1f} frames/s "
      "(seconds: decode {:.2f} on its own thread, detect {:.2f}, landmarks {:.2f}, crop+write {:.2f})",
      result.name, result.frames_decoded, result.frames_searched_whole, result.frames_with_face,
      result.frames_with_several_faces, result.frames_decoded / std::max(elapsed, 1e-9), result.decode_seconds,
      result.detect_seconds, result.landmark_seconds, result.write_seconds);
  return result;
}

void write_crop_record(const fs::path& output, const std::vector<CroppedVideo>& videos, const CropOptions& options) {
  const fs::path file = output / kCropRecordFile;
  nlohmann::json record = nlohmann::json::object();
  if (fs::exists(file)) {
    std::ifstream in(file);
    record = nlohmann::json::parse(in, nullptr, false);
    if (!record.is_object() || !record.contains("videos") || !record["videos"].is_object()) {
      spdlog::warn("{}: not a crop record this tool wrote; replaced", file.string());
      record = nlohmann::json::object();
    }
  }
  record["tool"] = "abaw-infer crop";
  record["version"] = ABAW_INFER_VERSION;
  if (!record.contains("videos")) record["videos"] = nlohmann::json::object();
  for (const auto& video : videos) {
    record["videos"][video.name] = {{"source", fs::absolute(video.source).string()},
                                    {"detector", video.detector},
                                    {"style", name_of(kCropStyleNames, options.style)},
                                    {"size", options.size},
                                    // As typed (0.1), not the float's double expansion (0.10000000149...).
                                    {"margin", std::stod(fmt::format("{}", options.margin))},
                                    {"jpeg_quality", options.jpeg_quality},
                                    {"detect_every", options.detect_every},
                                    {"frames_expected", video.frames_expected},
                                    {"frames_decoded", video.frames_decoded},
                                    {"frames_with_face", video.frames_with_face},
                                    {"frames_with_several_faces", video.frames_with_several_faces}};
    if (options.style == CropStyle::kAligned) {
      nlohmann::json points = nlohmann::json::array();
      for (const cv::Point2f& p : alignment_template()) points.push_back({p.x, p.y});
      record["videos"][video.name]["template"] = {
          {"name", "ArcFace five points (InsightFace), 112 x 112, scaled to size, shrunk by 1 / (1 + margin)"},
          {"points", points}};
    }
    if (!options.face_models.empty()) record["videos"][video.name]["face_models"] = options.face_models;
  }
  write_json(file, record);
}

void write_frame_counts(const fs::path& output, const std::vector<CroppedVideo>& videos) {
  std::map<std::string, long> counts;
  const fs::path file = output / kFrameCountFile;
  if (fs::exists(file)) counts = read_frame_counts(file);
  for (const auto& video : videos) counts[video.name] = video.frames_decoded;
  std::string text = "video,frames\n";
  for (const auto& [name, frames] : counts) text += name + "," + std::to_string(frames) + "\n";
  write_file_atomically(file, text);
}

}  // namespace abaw
