#include "abaw/face_crop.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <fstream>
#include <limits>
#include <map>
#include <set>

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
#include "abaw/runtime.hpp"
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

// Where the face search of a video stands between batches, and what it has done.
struct SearchState {
  long last_whole_frame;  // the frame last searched whole
  long& searched_whole;
  long& interpolated;
};

// The faces of a batch of frames `first`, `first + 1`, ...: where the detector can look near the
// tracked face cheaply, the whole frame is searched every `detect_every` frames, and in between
// only near the face on every `near_every`-th frame of the batch (and its last), the boxes of the
// frames between interpolated (interpolate_faces) where both neighbours have the face; wherever
// that fails the frame is searched near the face, and wherever nothing is found there, whole.
std::vector<std::vector<FaceBox>> find_faces(FaceDetector& detector, const std::vector<cv::Mat>& frames, long first,
                                             const std::optional<cv::Rect2f>& tracked, int detect_every,
                                             int near_every, SearchState& state) {
  const size_t count = frames.size();
  std::vector<std::vector<FaceBox>> faces(count);
  std::vector<size_t> whole;
  auto search_whole = [&] {
    if (whole.empty()) return;
    std::sort(whole.begin(), whole.end());
    std::vector<cv::Mat> whole_frames;
    for (size_t i : whole) whole_frames.push_back(frames[i]);
    const auto found = detector.detect_batch(whole_frames);
    state.searched_whole += static_cast<long>(whole.size());
    for (size_t j = 0; j < whole.size(); ++j) faces[whole[j]] = found[j];
    state.last_whole_frame = std::max(state.last_whole_frame, first + static_cast<long>(whole.back()));
    whole.clear();
  };
  if (!(detect_every > 1 && tracked && detector.detects_near())) {
    for (size_t i = 0; i < count; ++i) whole.push_back(i);
    search_whole();
    return faces;
  }
  auto search_near = [&](const std::vector<size_t>& which) {
    if (which.empty()) return;
    std::vector<cv::Mat> near_frames;
    for (size_t i : which) near_frames.push_back(frames[i]);
    const auto found = detector.detect_near(near_frames, std::vector<cv::Rect2f>(which.size(), *tracked));
    for (size_t j = 0; j < which.size(); ++j) {
      if (found[j].empty()) {
        whole.push_back(which[j]);
      } else {
        faces[which[j]] = found[j];
      }
    }
  };
  std::vector<size_t> near, skipped;
  long scheduled = state.last_whole_frame;
  for (size_t i = 0; i < count; ++i) {
    const long number = first + static_cast<long>(i);
    if (number - scheduled >= detect_every) {
      whole.push_back(i);
      scheduled = number;
    } else if (near_every > 1 && i % static_cast<size_t>(near_every) != 0 && i + 1 < count) {
      skipped.push_back(i);
    } else {
      near.push_back(i);
    }
  }
  search_near(near);
  search_whole();
  std::vector<size_t> retry;
  for (size_t i : skipped) {
    // The nearest frames searched on either side: the batch's first and last always are.
    size_t a = i, b = i;
    while (std::binary_search(skipped.begin(), skipped.end(), a)) --a;  // frame 0 is never skipped
    while (std::binary_search(skipped.begin(), skipped.end(), b)) ++b;
    faces[i] = interpolate_faces(faces[a], faces[b], static_cast<float>(i - a) / static_cast<float>(b - a));
    if (faces[i].empty()) {
      retry.push_back(i);
    } else {
      ++state.interpolated;
    }
  }
  search_near(retry);
  search_whole();
  return faces;
}

}  // namespace

float box_overlap(const cv::Rect2f& a, const cv::Rect2f& b) {
  const float intersection = (a & b).area();
  const float united = a.area() + b.area() - intersection;
  return united > 0 ? intersection / united : 0.0f;
}

std::vector<FaceBox> interpolate_faces(const std::vector<FaceBox>& a, const std::vector<FaceBox>& b, float t) {
  std::vector<FaceBox> faces;
  for (const FaceBox& from : a) {
    const FaceBox* to = nullptr;
    float best = 0.5f;
    for (const FaceBox& candidate : b) {
      const float overlap = box_overlap(from.box, candidate.box);
      if (overlap >= best) {
        best = overlap;
        to = &candidate;
      }
    }
    if (!to) continue;
    auto mix = [t](float x, float y) { return x + (y - x) * t; };
    faces.push_back({cv::Rect2f(mix(from.box.x, to->box.x), mix(from.box.y, to->box.y),
                                mix(from.box.width, to->box.width), mix(from.box.height, to->box.height)),
                     std::min(from.score, to->score)});
  }
  return faces;
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

namespace {

float descriptor_distance(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<float>::infinity();
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i] - b[i]) * (a[i] - b[i]);
  return static_cast<float>(std::sqrt(sum));
}

}  // namespace

void PeopleTracker::drop_stale(long frame) {
  for (Person& person : people_) {
    if (!person.dropped && person.frames < kConfirmFrames && frame - person.last_frame > kTentativeGap) {
      person.dropped = true;
    }
  }
}

void PeopleTracker::carry(long frame, const std::vector<FaceBox>& faces, const std::vector<int>& who) {
  drop_stale(frame);
  for (size_t f = 0; f < faces.size(); ++f) {
    if (who.at(f) >= 0) update(people_.at(static_cast<size_t>(who[f])), frame, faces[f], nullptr);
  }
}

std::vector<int> PeopleTracker::assign(long frame, const std::vector<FaceBox>& faces,
                                       const std::vector<std::vector<float>>& descriptors) {
  drop_stale(frame);
  std::vector<int> who(faces.size(), -1);
  std::vector<bool> taken(people_.size(), false);
  struct Pair {
    float cost;
    size_t face, person;
  };
  std::vector<Pair> by_descriptor, by_overlap;
  for (size_t f = 0; f < faces.size(); ++f) {
    for (size_t p = 0; p < people_.size(); ++p) {
      const Person& person = people_[p];
      if (person.dropped) continue;
      const float distance = descriptor_distance(descriptors.at(f), person.descriptor);
      const float overlap = frame - person.last_frame <= kRecentFrames ? box_overlap(faces[f].box, person.last_box) : 0;
      if (distance - kOverlapBonus * overlap < kMatchDistance) {
        by_descriptor.push_back({distance - kOverlapBonus * overlap, f, p});
      }
      if (overlap >= kMinOverlap && distance < kLooseDistance) by_overlap.push_back({-overlap, f, p});
    }
  }
  auto take = [&](std::vector<Pair>& pairs) {
    // Ties (equal costs) go to the earlier face and person, so a run is reproducible.
    std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.cost < b.cost; });
    for (const Pair& pair : pairs) {
      if (who[pair.face] >= 0 || taken[pair.person]) continue;
      who[pair.face] = static_cast<int>(pair.person);
      taken[pair.person] = true;
    }
  };
  take(by_descriptor);
  take(by_overlap);
  std::vector<size_t> left_over;
  for (size_t f = 0; f < faces.size(); ++f) {
    if (who[f] < 0) left_over.push_back(f);
  }
  std::stable_sort(left_over.begin(), left_over.end(),
                   [&](size_t a, size_t b) { return faces[a].box.area() > faces[b].box.area(); });
  for (size_t f : left_over) {
    const auto followed = std::count_if(people_.begin(), people_.end(), [](const Person& p) { return !p.dropped; });
    if (followed < max_people_) {
      people_.emplace_back();
      people_.back().first_frame = frame;
      taken.push_back(true);
      who[f] = static_cast<int>(people_.size() - 1);
      continue;
    }
    float best = kLooseDistance;
    for (size_t p = 0; p < people_.size(); ++p) {
      if (people_[p].dropped || taken[p]) continue;
      const float distance = descriptor_distance(descriptors.at(f), people_[p].descriptor);
      if (distance < best) {
        best = distance;
        who[f] = static_cast<int>(p);
      }
    }
    if (who[f] >= 0) taken[static_cast<size_t>(who[f])] = true;
  }
  for (size_t f = 0; f < faces.size(); ++f) {
    if (who[f] >= 0) update(people_[static_cast<size_t>(who[f])], frame, faces[f], &descriptors[f]);
  }
  return who;
}

void PeopleTracker::update(Person& person, long frame, const FaceBox& face, const std::vector<float>* descriptor) {
  ++person.frames;
  person.last_frame = frame;
  person.last_box = face.box;
  person.sum_centre_x += face.box.x + face.box.width / 2;
  if (!descriptor) return;
  ++person.described;
  if (person.descriptor.empty()) {
    person.descriptor = *descriptor;
    return;
  }
  // The running mean over every descriptor of the person: one odd frame moves it little.
  for (size_t i = 0; i < person.descriptor.size() && i < descriptor->size(); ++i) {
    person.descriptor[i] += ((*descriptor)[i] - person.descriptor[i]) / static_cast<float>(person.described);
  }
}

std::vector<int> continued_faces(const std::vector<FaceBox>& previous, const std::vector<FaceBox>& current) {
  std::vector<int> links(current.size(), -1);
  auto near = [](const FaceBox& a, const FaceBox& b) { return box_overlap(a.box, b.box) >= kNearOverlap; };
  for (size_t c = 0; c < current.size(); ++c) {
    int link = -1;
    bool plain = true;
    for (size_t p = 0; p < previous.size() && plain; ++p) {
      const float overlap = box_overlap(current[c].box, previous[p].box);
      if (overlap < kNearOverlap) continue;
      plain = link < 0 && overlap >= kContinuedOverlap;
      link = static_cast<int>(p);
    }
    if (!plain || link < 0) continue;
    for (size_t other = 0; other < current.size() && plain; ++other) {
      if (other == c) continue;
      plain = !near(current[c], current[other]) && !near(previous[static_cast<size_t>(link)], current[other]);
    }
    if (plain) links[c] = link;
  }
  return links;
}

std::vector<std::string> person_folder_names(const std::string& video, size_t people) {
  if (people <= 1) return {video};
  if (people == 2) return {video + "_left", video + "_right"};
  std::vector<std::string> names;
  for (size_t i = 1; i <= people; ++i) names.push_back(video + "_face" + std::to_string(i));
  return names;
}

cv::Mat square_crop(const cv::Mat& bgr, const cv::Rect2f& box, float margin, int size) {
  const float side = std::max(box.width, box.height) * (1.0f + margin);
  const float cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  const cv::Rect square(static_cast<int>(std::lround(cx - side / 2)), static_cast<int>(std::lround(cy - side / 2)),
                        std::max(1, static_cast<int>(std::lround(side))),
                        std::max(1, static_cast<int>(std::lround(side))));
  if (square.width > size) return shrink_by_area(bgr, square, cv::Size(size, size));
  const cv::Rect inside = square & cv::Rect(0, 0, bgr.cols, bgr.rows);
  cv::Mat canvas(square.size(), bgr.type(), cv::Scalar::all(0));
  if (inside.area() > 0) bgr(inside).copyTo(canvas(inside - square.tl()));
  cv::Mat out;
  cv::resize(canvas, out, cv::Size(size, size), 0, 0, cv::INTER_CUBIC);
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

struct VideoFaces::Decoder {
  // Decoded frames of one batch, and the seconds they took.
  struct Frames {
    std::vector<cv::Mat> frames;
    std::vector<double> times_ms;  // each frame's presentation time, as the container gives it
    double seconds = 0;
  };
  double last_time_ms = std::numeric_limits<double>::quiet_NaN();
  cv::VideoCapture capture;
  std::unique_ptr<OrderedQueue<Frames>> queue;  // last member: its thread reads `capture`
};

VideoFaces::VideoFaces(const fs::path& video, FaceDetector& detector, const CropOptions& options)
    : options_(options), detector_(detector), people_(options.max_people), last_whole_frame_(-kMaxFrameNumber) {
  const VideoName name = VideoName::checked(video.stem().string(), video.string());
  result_.name = name;
  result_.source = video;
  result_.detector = detector.description();
  if (options.style == CropStyle::kAligned && !options.face_nets) {
    throw Error(ErrorKind::kUsage, "aligned crops need the landmark net (face models)");
  }
  if (options.max_people > 1 && !options.face_nets) {
    throw Error(ErrorKind::kUsage, "following several faces needs the face descriptor (face models)");
  }
  std::error_code size_error;
  if (fs::file_size(video, size_error) == 0 && !size_error) {
    throw Error(ErrorKind::kInput, "the video file is empty (0 bytes)", video.string());
  }
  decoder_ = std::make_unique<Decoder>();
  cv::VideoCapture& capture = decoder_->capture;
  if (!capture.open(video.string())) {
    throw Error(ErrorKind::kInput, "cannot open the video (no decoder for it?)", video.string());
  }
  const double expected = capture.get(cv::CAP_PROP_FRAME_COUNT);  // off by one at times
  result_.frames_expected = expected > 0 && expected < 1e9 ? static_cast<long>(expected) : 0;
  const size_t batch_frames = static_cast<size_t>(std::max(1, options.batch_frames));
  decoder_->queue = std::make_unique<OrderedQueue<Decoder::Frames>>(
      std::numeric_limits<size_t>::max(), 1, 2, [&capture, batch_frames](size_t) {
        Decoder::Frames batch;
        const auto begin = Clock::now();
        while (batch.frames.size() < batch_frames) {
          cv::Mat frame;  // a fresh buffer per frame: the batch keeps them all
          if (!capture.read(frame)) break;
          batch.frames.push_back(std::move(frame));
          batch.times_ms.push_back(capture.get(cv::CAP_PROP_POS_MSEC));
        }
        batch.seconds = seconds_since(begin);
        return batch;
      });
}

VideoFaces::~VideoFaces() = default;

std::vector<FaceFrame> VideoFaces::next() {
  if (ended_) return {};
  Decoder::Frames batch = *decoder_->queue->next();
  const fs::path& video = result_.source;
  if (batch.frames.empty()) {
    ended_ = true;
    if (result_.frames_decoded == 0) throw Error(ErrorKind::kInput, "the video yielded no frame", video.string());
    // Containers may count one frame more than decodes; more than that is a file that ends early.
    if (result_.frames_expected > 0 && result_.frames_decoded + 1 < result_.frames_expected) {
      spdlog::warn(
          "{}: the video ended after {} of the {} frames its container announces (truncated or damaged "
          "file?); its frame count is taken as {}",
          video.string(), result_.frames_decoded, result_.frames_expected, result_.frames_decoded);
    }
    if (result_.variable_frame_rate()) {
      spdlog::warn("{}: variable frame rate: frames are {:.1f} to {:.1f} ms apart; crops and rows are numbered by "
                   "decoded frame, not by time, so annotations made at a fixed rate may not line up with them",
                   video.string(), result_.min_frame_interval_ms, result_.max_frame_interval_ms);
    }
    if (result_.frames_with_face == 0) {
      spdlog::warn("{}: no face found in any of its {} frames: every frame gets the model set's missing-frame "
                   "treatment",
                   video.string(), result_.frames_decoded);
    }
    return {};
  }
  result_.decode_seconds += batch.seconds;
  for (double time : batch.times_ms) {
    // Only increasing times count: a container without them gives 0 for every frame.
    const double interval = time - decoder_->last_time_ms;
    if (interval > 0) {
      result_.min_frame_interval_ms = result_.min_frame_interval_ms > 0 ? std::min(result_.min_frame_interval_ms, interval) : interval;
      result_.max_frame_interval_ms = std::max(result_.max_frame_interval_ms, interval);
    }
    decoder_->last_time_ms = time;
  }
  const long first = result_.frames_decoded + 1;
  result_.frames_decoded += static_cast<long>(batch.frames.size());
  if (result_.frames_decoded > kMaxFrameNumber) {
    throw Error(ErrorKind::kInput,
                "more than " + std::to_string(kMaxFrameNumber) + " frames: past the frame numbers crop names can carry",
                video.string());
  }
  auto stage = Clock::now();
  // Several people: every frame is searched whole (the near search follows one face).
  const bool people = options_.max_people > 1;
  SearchState search{last_whole_frame_, result_.frames_searched_whole, result_.frames_interpolated};
  const auto faces = find_faces(detector_, batch.frames, first, people ? std::nullopt : track_.last(),
                                options_.detect_every, options_.near_every, search);
  last_whole_frame_ = search.last_whole_frame;
  result_.detect_seconds += seconds_since(stage);
  std::vector<FaceFrame> frames;
  std::vector<size_t> to_cut, frame_of;  // the frames with a face, and their place in the batch
  if (people) {
    frames = follow_people(batch.frames, faces, first);
    for (size_t i = 0; i < frames.size(); ++i) {
      if (frames[i].person < 0) continue;
      to_cut.push_back(i);
      frame_of.push_back(static_cast<size_t>(frames[i].number - first));
    }
  } else {
    frames.resize(batch.frames.size());
    for (size_t i = 0; i < batch.frames.size(); ++i) {
      if (faces[i].size() > 1) ++result_.frames_with_several_faces;
      frames[i].number = first + static_cast<long>(i);
      frames[i].face = track_.pick(faces[i]);
      if (frames[i].face) {
        to_cut.push_back(i);
        frame_of.push_back(i);
        ++result_.frames_with_face;
      }
    }
  }
  const bool aligned = options_.style == CropStyle::kAligned;
  std::vector<FaceLandmarks> landmarks;
  if (aligned) {
    std::vector<cv::Rect2f> boxes;
    for (size_t c : to_cut) boxes.push_back(frames[c].face->box);
    stage = Clock::now();
    landmarks = options_.face_nets->landmarks(batch.frames, frame_of, boxes);
    result_.landmark_seconds += seconds_since(stage);
  }
  stage = Clock::now();
  for (size_t c = 0; c < to_cut.size(); ++c) {
    FaceFrame& frame = frames[to_cut[c]];
    if (aligned) frame.points = five_points(landmarks[c]);
    if (options_.cut_crops) frame.crop = cut_face(batch.frames[frame_of[c]], frame, options_);
  }
  result_.crop_seconds += seconds_since(stage);
  return frames;
}

std::vector<int> closest_faces(const std::vector<FaceBox>& previous, const std::vector<FaceBox>& current) {
  auto best = [](const FaceBox& face, const std::vector<FaceBox>& among) {
    int index = -1;
    float most = 0;
    for (size_t k = 0; k < among.size(); ++k) {
      const float overlap = box_overlap(face.box, among[k].box);
      if (overlap > most) {
        most = overlap;
        index = static_cast<int>(k);
      }
    }
    return std::make_pair(index, most);
  };
  std::vector<int> links(current.size(), -1);
  for (size_t c = 0; c < current.size(); ++c) {
    const auto [p, overlap] = best(current[c], previous);
    if (p >= 0 && overlap >= kContinuedOverlap &&
        best(previous[static_cast<size_t>(p)], current).first == static_cast<int>(c)) {
      links[c] = p;
    }
  }
  return links;
}

std::vector<FaceFrame> VideoFaces::follow_people(const std::vector<cv::Mat>& frames,
                                                 const std::vector<std::vector<FaceBox>>& faces, long first) {
  const size_t count = faces.size();
  std::vector<bool> all_continued(count);     // every face of the frame plainly continues one (continued_faces)
  std::vector<std::vector<int>> checks(count);  // closest_faces of each frame
  for (size_t i = 0; i < count; ++i) {
    const std::vector<FaceBox>& before = i == 0 ? previous_faces_ : faces[i - 1];
    const std::vector<int> links = continued_faces(before, faces[i]);
    all_continued[i] = std::all_of(links.begin(), links.end(), [](int link) { return link >= 0; });
    checks[i] = closest_faces(before, faces[i]);
  }
  std::vector<std::optional<std::vector<FaceDescriptor>>> described(count);
  auto describe = [&](const std::vector<size_t>& which) {
    std::vector<size_t> face_frame;
    std::vector<cv::Rect2f> boxes;
    for (size_t i : which) {
      for (const FaceBox& face : faces[i]) {
        face_frame.push_back(i);
        boxes.push_back(face.box);
      }
    }
    std::vector<FaceDescriptor> found;
    if (!boxes.empty()) {
      const auto stage = Clock::now();
      found = options_.face_nets->descriptors(frames, face_frame, boxes);
      result_.descriptor_seconds += seconds_since(stage);
      result_.faces_described += static_cast<long>(boxes.size());
    }
    auto next = found.begin();
    for (size_t i : which) {
      described[i].emplace(next, next + static_cast<long>(faces[i].size()));
      next += static_cast<long>(faces[i].size());
    }
  };
  std::vector<size_t> wanted;  // in one call, so the descriptor net sees them as one batch
  for (size_t i = 0; i < count; ++i) {
    if (!faces[i].empty() && (!all_continued[i] || i + 1 == count)) wanted.push_back(i);
  }
  describe(wanted);
  for (const std::vector<FaceBox>& of_frame : faces) {
    if (of_frame.size() > 1) ++result_.frames_with_several_faces;
    result_.faces_found += static_cast<long>(of_frame.size());
  }
  const PeopleTracker tracker_before = people_;
  while (true) {
    std::vector<FaceFrame> out;
    std::vector<int> before = previous_people_;  // the people of the frame before
    long with_face = 0;
    bool carried = false, contradicted = false;
    for (size_t i = 0; i < count && !contradicted; ++i) {
      const long number = first + static_cast<long>(i);
      // The people of the faces continued (closest_faces holds every link continued_faces makes).
      std::vector<int> inherited(faces[i].size(), -1);
      for (size_t j = 0; j < faces[i].size(); ++j) {
        if (checks[i][j] >= 0) inherited[j] = before[static_cast<size_t>(checks[i][j])];
      }
      std::vector<int> who;
      if (!described[i]) {  // every face continues one: their people (or nobody) carry over
        people_.carry(number, faces[i], inherited);
        who = inherited;
        carried = carried || !faces[i].empty();
      } else {
        who = people_.assign(number, faces[i], *described[i]);
        for (size_t j = 0; j < who.size(); ++j) {
          contradicted = contradicted || (checks[i][j] >= 0 && who[j] != inherited[j]);
        }
        contradicted = contradicted && carried;
      }
      bool anyone = false;
      for (size_t j = 0; j < who.size(); ++j) {
        if (who[j] < 0) continue;
        FaceFrame frame;
        frame.number = number;
        frame.person = who[j];
        frame.face = faces[i][j];
        out.push_back(std::move(frame));
        anyone = true;
      }
      if (anyone) {
        ++with_face;
      } else {  // the frame still has its entry: an empty batch means the end of the video
        out.emplace_back();
        out.back().number = number;
        out.back().person = -1;
      }
      before = std::move(who);
    }
    if (contradicted) {  // a carried face was someone else's: every face is matched by descriptor
      people_ = tracker_before;
      std::vector<size_t> rest;
      for (size_t i = 0; i < count; ++i) {
        if (!described[i]) rest.push_back(i);
      }
      describe(rest);
      continue;
    }
    result_.frames_with_face += with_face;
    if (count > 0) {
      previous_faces_ = faces.back();
      previous_people_ = std::move(before);
    }
    return out;
  }
}

std::string person_boxes_csv(const std::vector<FaceFrame>& found, long frames, const CropOptions& options) {
  std::string csv = boxes_csv_header(options);
  size_t next = 0;
  for (long f = 1; f <= frames; ++f) {
    if (next < found.size() && found[next].number == f) {
      csv += boxes_csv_line(found[next++], options);
    } else {
      csv += boxes_csv_line(FaceFrame{f, -1, std::nullopt, {}, {}}, options);
    }
  }
  return csv;
}

cv::Mat cut_face(const cv::Mat& bgr, const FaceFrame& face, const CropOptions& options) {
  if (options.style == CropStyle::kAligned) return aligned_crop(bgr, face.points, options.size, options.margin);
  return square_crop(bgr, face.face->box, options.margin, options.size);
}

std::vector<std::pair<int, std::string>> name_people(const PeopleTracker& tracker, const std::string& video) {
  const std::vector<PeopleTracker::Person>& found = tracker.people();
  std::vector<int> people;
  for (size_t p = 0; p < found.size(); ++p) {
    if (found[p].confirmed()) people.push_back(static_cast<int>(p));
  }
  std::stable_sort(people.begin(), people.end(),
                   [&](int a, int b) { return found[a].mean_centre_x() < found[b].mean_centre_x(); });
  const std::vector<std::string> names = person_folder_names(video, people.size());
  std::vector<std::pair<int, std::string>> named;
  for (size_t k = 0; k < people.size(); ++k) named.emplace_back(people[k], names[k]);
  return named;
}

std::string boxes_csv_header(const CropOptions& options) {
  std::string header = "frame,x,y,width,height,score";
  if (options.style == CropStyle::kAligned) {
    header +=
        ",left_eye_x,left_eye_y,right_eye_x,right_eye_y,nose_x,nose_y,mouth_left_x,mouth_left_y,mouth_right_x,"
        "mouth_right_y";
  }
  return header + "\n";
}

std::string boxes_csv_line(const FaceFrame& frame, const CropOptions& options) {
  const bool aligned = options.style == CropStyle::kAligned;
  std::string line = std::to_string(frame.number);
  if (!frame.face) return line + std::string(aligned ? 15 : 5, ',') + "\n";
  char field[96];
  const FaceBox& face = *frame.face;
  std::snprintf(field, sizeof field, ",%.1f,%.1f,%.1f,%.1f,%.3f", face.box.x, face.box.y, face.box.width,
                face.box.height, face.score);
  line += field;
  if (aligned) {
    for (const cv::Point2f& p : frame.points) {
      std::snprintf(field, sizeof field, ",%.1f,%.1f", p.x, p.y);
      line += field;
    }
  }
  return line + "\n";
}

CropFolderWriter::CropFolderWriter(const fs::path& output, const VideoName& name)
    : output_(output), name_(name), staging_(output / ("." + name.str() + kStagingMark + std::to_string(::getpid()))) {
  std::error_code ec;
  fs::remove_all(staging_, ec);
  fs::create_directories(staging_, ec);
  if (ec) throw Error(ErrorKind::kOutput, "cannot create folder: " + ec.message(), staging_.string());
}

CropFolderWriter::~CropFolderWriter() {
  std::error_code ignored;
  if (!committed_) fs::remove_all(staging_, ignored);
}

void CropFolderWriter::write(long frame, const std::vector<uint8_t>& jpeg) {
  write_plain_file(staging_ / format_crop_file_name(frame), jpeg);
}

void CropFolderWriter::commit(const std::string& boxes_csv, const std::optional<VideoName>& as) {
  const VideoName& name = as ? *as : name_;
  flush_folder(staging_);
  replace_folder(staging_, video_path(output_, name));
  committed_ = true;
  write_file_atomically(video_path(output_, name, ".boxes.csv"), boxes_csv);
}

namespace {

// Logs how far a video is, every few seconds.
class CropProgress {
 public:
  explicit CropProgress(Clock::time_point start) : start_(start), last_(start) {}
  void update(const CroppedVideo& counts) {
    const auto now = Clock::now();
    if (std::chrono::duration<double>(now - last_).count() < 3.0) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    spdlog::info("{}: frame {}/~{}, {:.1f} frames/s", counts.name, counts.frames_decoded, counts.frames_expected,
                 counts.frames_decoded / elapsed);
  }

 private:
  Clock::time_point start_, last_;
};

// Encodes crops as JPEG and writes them into their crop folders on a thread of its own, so that
// on 2 cores this (about a fifth of `crop`'s work) runs beside the detector instead of after it.
// At most kCapacity crops wait, so memory stays bounded.
class CropWriterThread {
 public:
  explicit CropWriterThread(int jpeg_quality) : jpeg_{cv::IMWRITE_JPEG_QUALITY, jpeg_quality} {
    thread_ = std::thread([this] { work(); });
  }
  // Stops after the crop in hand (queued ones are dropped: the staging folder goes anyway).
  ~CropWriterThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      queue_.clear();
    }
    changed_.notify_all();
    thread_.join();
  }
  CropWriterThread(const CropWriterThread&) = delete;
  CropWriterThread& operator=(const CropWriterThread&) = delete;

  // Queues `crop` as frame `frame` of `folder`, waiting while the queue is full. Rethrows what
  // writing an earlier crop threw.
  void add(CropFolderWriter& folder, long frame, cv::Mat crop) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return error_ || queue_.size() < kCapacity; });
    if (error_) std::rethrow_exception(error_);
    queue_.push_back({&folder, frame, std::move(crop)});
    lock.unlock();
    changed_.notify_all();
  }

  // Waits until every queued crop is written; rethrows the thread's error. Returns the seconds the
  // thread spent encoding and writing.
  double finish() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return error_ || (queue_.empty() && !busy_); });
    if (error_) std::rethrow_exception(error_);
    return seconds_;
  }

 private:
  struct Job {
    CropFolderWriter* folder;
    long frame;
    cv::Mat crop;
  };
  static constexpr size_t kCapacity = 64;

  void work() {
    while (true) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
      }
      const auto start = Clock::now();
      std::exception_ptr error;
      try {
        std::vector<uint8_t> bytes;
        cv::imencode(".jpg", job.crop, bytes, jpeg_);
        job.folder->write(job.frame, bytes);
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        seconds_ += seconds_since(start);
        busy_ = false;
        if (error && !error_) error_ = error;
      }
      changed_.notify_all();
    }
  }

  const std::vector<int> jpeg_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> queue_;
  bool busy_ = false, stopping_ = false;
  double seconds_ = 0;
  std::exception_ptr error_;
  std::thread thread_;  // last: started once everything above exists
};

void log_cropped(const CroppedVideo& video, const std::string& people) {
  spdlog::info(
      "{}: {} frames ({} searched whole, {} interpolated), {} with a face ({} with several{}), {:.1f} frames/s "
      "(seconds: decode {:.2f} "
      "on its own thread, detect {:.2f}, landmarks {:.2f}, descriptors {:.2f}, crop+write {:.2f})",
      video.name, video.frames_decoded, video.frames_searched_whole, video.frames_interpolated, video.frames_with_face,
      video.frames_with_several_faces, people, video.frames_decoded / std::max(video.total_seconds, 1e-9),
      video.decode_seconds, video.detect_seconds, video.landmark_seconds, video.descriptor_seconds,
      video.crop_seconds + video.write_seconds);
}

// `crop --faces N`, N > 1: each person's crops go to a staging folder of their own; the folders
// are named once the video has ended and everyone's mean position is known.
std::vector<CroppedVideo> crop_people(const fs::path& video, FaceDetector& detector, const CropOptions& options) {
  const auto start = Clock::now();
  VideoFaces faces(video, detector, options);
  const std::string name = faces.counts().name;
  std::map<int, std::unique_ptr<CropFolderWriter>> writers;  // by person
  std::map<int, std::vector<FaceFrame>> found_on;            // by person: where they were found, no crop
  CropProgress progress(start);
  double write_seconds = 0;
  {
    CropWriterThread crops(options.jpeg_quality);  // joined before the writers commit or go
    for (auto frames = faces.next(); !frames.empty(); frames = faces.next()) {
      for (FaceFrame& frame : frames) {
        if (frame.person < 0) continue;
        std::unique_ptr<CropFolderWriter>& writer = writers[frame.person];
        if (!writer) {
          writer = std::make_unique<CropFolderWriter>(
              options.output, VideoName::checked(name + "_person" + std::to_string(frame.person + 1), video.string()));
        }
        crops.add(*writer, frame.number, std::move(frame.crop));
        found_on[frame.person].push_back(std::move(frame));
      }
      progress.update(faces.counts());
    }
    write_seconds = crops.finish();
  }
  const std::vector<PeopleTracker::Person>& found = faces.people().people();
  const std::vector<std::pair<int, std::string>> people = name_people(faces.people(), name);
  const long frames = faces.counts().frames_decoded;
  std::vector<CroppedVideo> results;
  std::string summary;
  if (people.empty()) {
    // Nobody stayed long enough to count: the video's folder is written empty, as with one face.
    CropFolderWriter writer(options.output, VideoName::checked(name, video.string()));
    writer.commit(person_boxes_csv({}, frames, options));
    results.push_back(faces.counts());
    results.back().frames_with_face = 0;
    if (faces.counts().frames_with_face > 0) {
      spdlog::warn("{}: no face was found on {} frames or more in a row ({} frames with a face in all): no crops "
                   "written",
                   video.string(), PeopleTracker::kConfirmFrames, faces.counts().frames_with_face);
    }
  }
  for (size_t k = 0; k < people.size(); ++k) {
    const auto& [person, folder] = people[k];
    writers[person]->commit(person_boxes_csv(found_on[person], frames, options),
                            VideoName::checked(folder, video.string()));
    CroppedVideo result = faces.counts();
    result.name = folder;
    result.frames_with_face = found[person].frames;
    results.push_back(result);
    summary += fmt::format("{}{} on {} frames (first {}, last {})", k ? "; " : "", folder, found[person].frames,
                           found[person].first_frame, found[person].last_frame);
  }
  CroppedVideo all = faces.counts();
  all.write_seconds = write_seconds;
  all.total_seconds = seconds_since(start);
  for (CroppedVideo& result : results) {
    result.write_seconds = all.write_seconds;
    result.total_seconds = all.total_seconds;
  }
  log_cropped(
      all, fmt::format("; {} of up to {} people followed: {}; descriptors for {} of {} faces", people.size(),
                       options.max_people, summary.empty() ? "none" : summary, all.faces_described, all.faces_found));
  return results;
}

}  // namespace

std::vector<PersonFaces> find_people(const fs::path& video, FaceDetector& detector, const CropOptions& options,
                                     CroppedVideo& counts, const std::function<bool()>& stop) {
  const auto start = Clock::now();
  CropOptions finding = options;
  finding.cut_crops = false;  // each person's stream cuts its own
  VideoFaces faces(video, detector, finding);
  std::map<int, std::vector<FaceFrame>> found;  // by person
  CropProgress progress(start);
  for (auto frames = faces.next(); !frames.empty(); frames = faces.next()) {
    for (FaceFrame& frame : frames) {
      if (frame.person < 0) continue;
      found[frame.person].push_back(std::move(frame));
    }
    progress.update(faces.counts());
    if (stop && stop()) break;
  }
  counts = faces.counts();
  counts.total_seconds = seconds_since(start);
  std::vector<PersonFaces> people;
  for (auto& [person, name] : name_people(faces.people(), counts.name)) {
    people.push_back({name, std::move(found[person])});
  }
  return people;
}

std::vector<CroppedVideo> crop_video(const fs::path& video, FaceDetector& detector, const CropOptions& options) {
  if (options.max_people > 1) return crop_people(video, detector, options);
  const auto start = Clock::now();
  VideoFaces faces(video, detector, options);
  CropFolderWriter writer(options.output, VideoName::checked(faces.counts().name, video.string()));
  std::string boxes = faces.boxes_header();
  CropProgress progress(start);
  double write_seconds = 0;
  {
    CropWriterThread crops(options.jpeg_quality);  // joined before `writer` commits or goes
    for (auto frames = faces.next(); !frames.empty(); frames = faces.next()) {
      for (FaceFrame& frame : frames) {
        boxes += faces.boxes_line(frame);
        if (!frame.crop.empty()) crops.add(writer, frame.number, std::move(frame.crop));
      }
      progress.update(faces.counts());
    }
    write_seconds = crops.finish();
  }
  writer.commit(boxes);
  CroppedVideo result = faces.counts();
  result.write_seconds = write_seconds;
  result.total_seconds = seconds_since(start);
  log_cropped(result, ": the tracked face was kept");
  return {result};
}

FaceFinder make_face_finder(const FaceFinderOptions& options, const FacePipelineSpec& set_default,
                            c10::Device device) {
  FaceFinder finder;
  const DetectorKind detector = options.pipeline.detector.value_or(set_default.detector.value_or(DetectorKind::kTiny));
  CropOptions& crop = finder.crop;
  crop.style = options.pipeline.style.value_or(set_default.style.value_or(CropStyle::kBox));
  crop.size = options.pipeline.size.value_or(set_default.size.value_or(112));
  crop.margin = options.pipeline.margin.value_or(
      set_default.margin.value_or(crop.style == CropStyle::kAligned ? 0.0f : 0.1f));
  crop.detect_every = options.detect_every;
  crop.near_every = options.near_every;
  crop.batch_frames = options.batch_frames;
  crop.jpeg_quality = options.jpeg_quality;
  if (detector == DetectorKind::kYuNet && options.yunet_model.empty()) {
    throw Error(ErrorKind::kUsage, "--detector yunet needs --yunet-model FILE");
  }
  crop.max_people = options.max_people;
  if (detector == DetectorKind::kTiny || crop.style == CropStyle::kAligned || crop.max_people > 1) {
    // Only the nets this pipeline uses load now: the landmark net alone is ~55 ms of start-up.
    finder.models =
        std::make_shared<FaceModels>(options.face_models, device, options.detect_size, options.score_threshold,
                                     FaceNets{crop.style == CropStyle::kAligned, crop.max_people > 1});
    crop.face_nets = finder.models.get();
    const FaceModelsConfig& config = finder.models->config();
    if (crop.max_people > 1 && config.descriptor_file.empty()) {
      throw Error(ErrorKind::kModel,
                  "--faces " + std::to_string(crop.max_people) +
                      " needs the face descriptor, which these face models lack (remake them with "
                      "scripts/make_default_model_set.sh)",
                  (options.face_models / kFaceModelsFile).string());
    }
    crop.face_models = (options.face_models / kFaceModelsFile).string() + " (" + config.detector_file + ", " +
                       config.landmarks_file + (crop.max_people > 1 ? ", " + config.descriptor_file : "") + "; " +
                       config.source + ")";
  }
  if (detector == DetectorKind::kTiny) {
    finder.detector = make_tiny_face_detector(finder.models, options.min_face);
  } else if (detector == DetectorKind::kYuNet) {
    finder.detector = make_yunet_detector(options.yunet_model,
                                          options.score_threshold < 0 ? 0.6f : options.score_threshold, options.min_face);
  } else {
    finder.detector = make_haar_detector(options.cascade, options.min_face);
  }
  if (detector != DetectorKind::kTiny) {
    // The cascade and cv::dnn run on OpenCV's thread pool, which configure_runtime limits to one
    // thread for the resizes beside LibTorch. These detectors are the slowest stage by far (the
    // decoder idles beside them), so they get every usable CPU.
    cv::setNumThreads(usable_cpu_count());
  }
  finder.threads = options.threads;
  finder.description =
      fmt::format("{}, {} crops {} px, margin {}, detect every {}, near every {}, batches of {}, {} thread(s), JPEG {}",
                  finder.detector->description(), name_of(kCropStyleNames, crop.style), crop.size, crop.margin,
                  crop.detect_every, crop.near_every, crop.batch_frames, options.threads, crop.jpeg_quality);
  if (crop.max_people > 1) finder.description += fmt::format(", up to {} people", crop.max_people);
  if (!crop.face_models.empty()) finder.description += ", " + crop.face_models;
  return finder;
}

int face_model_threads(const FaceFinderOptions& options) {
  if (options.threads > 0) return options.threads;
  if (options.threads == 0) return usable_cpu_count();
  // Measured on 2 CPUs (scripts/README.md, "Several people"): crop --faces 2 at 40-46 frames/s with
  // 2 threads against 30-38 with 1; one face no faster at 2 threads than at 1.
  return options.max_people > 1 ? usable_cpu_count() : 1;
}

std::vector<fs::path> list_video_files(const std::vector<fs::path>& inputs) {
  // Still images are one-frame videos (OpenCV opens them the same way).
  static const std::set<std::string> kExtensions{".mp4", ".avi", ".mov", ".mkv", ".webm", ".jpg", ".jpeg", ".png"};
  std::vector<fs::path> videos;
  for (const fs::path& input : inputs) {
    std::error_code ec;
    if (!fs::is_directory(input, ec)) {
      if (!fs::exists(input, ec)) throw Error(ErrorKind::kInput, "no such video file or folder", input.string());
      videos.push_back(input);
      continue;
    }
    std::vector<fs::path> found;
    for (const fs::directory_entry& entry : list_folder(input, "video folder")) {
      if (entry.path().filename().string().front() == '.') continue;  // hidden, e.g. macOS "._clip.mp4"
      std::string extension = entry.path().extension().string();
      std::transform(extension.begin(), extension.end(), extension.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (std::error_code kind; entry.is_regular_file(kind) && kExtensions.count(extension)) {
        found.push_back(entry.path());
      }
    }
    if (found.empty()) throw Error(ErrorKind::kInput, "no video files in the folder", input.string());
    std::sort(found.begin(), found.end());
    videos.insert(videos.end(), found.begin(), found.end());
  }
  std::map<std::string, fs::path> by_stem;
  for (const fs::path& video : videos) {
    auto [it, added] = by_stem.emplace(video.stem().string(), video);
    if (!added) {
      throw Error(ErrorKind::kUsage,
                  "two videos named '" + it->first + "' (" + it->second.string() + " and " + video.string() +
                      "): their crops and outputs would share one name",
                  video.string());
    }
  }
  return videos;
}

namespace {

// crop.json as it is, or an empty object when it is absent or not one this tool wrote.
nlohmann::json read_crop_record(const fs::path& file, bool warn) {
  if (!fs::exists(file)) return nlohmann::json::object();
  std::ifstream in(file);
  nlohmann::json record = nlohmann::json::parse(in, nullptr, false);
  if (!record.is_object() || !record.contains("videos") || !record["videos"].is_object()) {
    if (warn) spdlog::warn("{}: not a crop record this tool wrote; replaced", file.string());
    return nlohmann::json::object();
  }
  return record;
}

}  // namespace

std::vector<std::string> remove_replaced_crops(const fs::path& output, const fs::path& video,
                                               const std::vector<CroppedVideo>& written) {
  const nlohmann::json record = read_crop_record(output / kCropRecordFile, false);
  if (!record.contains("videos")) return {};
  const std::string stem = video.stem().string();
  std::vector<std::string> candidates{stem};
  for (size_t people = 2; people <= static_cast<size_t>(kMaxPeople); ++people) {
    for (const std::string& name : person_folder_names(stem, people)) {
      if (std::find(candidates.begin(), candidates.end(), name) == candidates.end()) candidates.push_back(name);
    }
  }
  const std::string source = fs::absolute(video).string();
  std::vector<std::string> removed;
  for (const std::string& name : candidates) {
    if (std::any_of(written.begin(), written.end(), [&](const CroppedVideo& v) { return v.name == name; })) continue;
    const auto entry = record["videos"].find(name);
    if (entry == record["videos"].end() || !entry->is_object() || entry->value("source", "") != source) continue;
    std::error_code ec;
    fs::remove_all(output / name, ec);
    if (!ec) fs::remove(output / (name + ".boxes.csv"), ec);
    if (ec) {
      spdlog::warn("{}: could not remove the crops of an earlier run: {}", (output / name).string(), ec.message());
      continue;
    }
    spdlog::info("{}: removed, the crops of an earlier crop of {} (now in other folders)", (output / name).string(),
                 video.string());
    removed.push_back(name);
  }
  return removed;
}

void write_crop_record(const fs::path& output, const std::vector<CroppedVideo>& videos, const CropOptions& options,
                       const std::vector<std::string>& removed) {
  const fs::path file = output / kCropRecordFile;
  nlohmann::json record = read_crop_record(file, true);
  if (record.contains("videos")) {
    for (const std::string& name : removed) record["videos"].erase(name);
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
                                    {"near_every", options.near_every},
                                    {"frames_interpolated", video.frames_interpolated},
                                    {"frames_expected", video.frames_expected},
                                    {"frames_decoded", video.frames_decoded},
                                    {"frames_with_face", video.frames_with_face},
                                    {"frames_with_several_faces", video.frames_with_several_faces}};
    if (options.max_people > 1) record["videos"][video.name]["faces"] = options.max_people;
    if (video.variable_frame_rate()) {
      record["videos"][video.name]["variable_frame_rate"] = {
          {"min_frame_interval_ms", std::round(video.min_frame_interval_ms * 1000) / 1000},
          {"max_frame_interval_ms", std::round(video.max_frame_interval_ms * 1000) / 1000}};
    }
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

void write_frame_counts(const fs::path& output, const std::vector<CroppedVideo>& videos,
                        const std::vector<std::string>& removed) {
  std::map<std::string, long> counts;
  const fs::path file = output / kFrameCountFile;
  if (fs::exists(file)) counts = read_frame_counts(file);
  for (const std::string& name : removed) counts.erase(name);
  for (const auto& video : videos) counts[video.name] = video.frames_decoded;
  std::string text = "video,frames\n";
  for (const auto& [name, frames] : counts) text += name + "," + std::to_string(frames) + "\n";
  write_file_atomically(file, text);
}

}  // namespace abaw
