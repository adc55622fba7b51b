#include "abaw/face_models.hpp"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <opencv2/imgproc.hpp>

#include "abaw/error.hpp"
#include "abaw/resample.hpp"
#include "abaw/runtime.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace abaw {
namespace {

// A float32 [N, 3, S, S] RGB 0..255 batch from same-sized BGR 8-bit images, laid out in memory as
// `layout` says.
torch::Tensor rgb_batch(const std::vector<cv::Mat>& squares, torch::MemoryFormat layout) {
  const int side = squares.front().rows;
  torch::Tensor batch = torch::empty({static_cast<long>(squares.size()), side, side, 3}, torch::kUInt8);
  for (size_t i = 0; i < squares.size(); ++i) {
    cv::Mat target(side, side, CV_8UC3, batch[static_cast<long>(i)].data_ptr<uint8_t>());
    cv::cvtColor(squares[i], target, cv::COLOR_BGR2RGB);
  }
  return batch.permute({0, 3, 1, 2}).to(torch::kFloat32).contiguous(layout);
}

// Runs `module` on the batch of `squares` (in memory as `layout`) and returns its float32 output on
// the CPU, checked against `expected` (-1: any size). Throws Error(kModel) naming `file` and both
// shapes.
torch::Tensor run_checked(torch::jit::script::Module& module, const std::vector<cv::Mat>& squares, torch::Device device,
                          const fs::path& file, const char* what, const std::vector<int64_t>& expected,
                          torch::MemoryFormat layout = torch::MemoryFormat::Contiguous) {
  torch::Tensor output;
  try {
    output = module.forward({rgb_batch(squares, layout).to(device)})
                 .toTensor()
                 .to(torch::kCPU, torch::kFloat32)
                 .contiguous();
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kModel, std::string(what) + " failed: " + torch_error_line(e), file.string());
  }
  bool matches = output.dim() == static_cast<int64_t>(expected.size());
  for (size_t d = 0; matches && d < expected.size(); ++d) matches = expected[d] < 0 || output.size(d) == expected[d];
  if (!matches) {
    std::ostringstream shape, wanted;
    shape << output.sizes();
    wanted << c10::IntArrayRef(expected);
    throw Error(ErrorKind::kModel,
                std::string(what) + " output is " + shape.str() + ", expected " + wanted.str() + " (-1: any)",
                file.string());
  }
  return output;
}

}  // namespace

FaceModelsConfig load_face_models_config(const fs::path& folder) {
  const fs::path file = folder / kFaceModelsFile;
  std::ifstream in(file);
  if (!in) {
    throw Error(ErrorKind::kModel,
                "no face models here: make them with `bash scripts/make_default_model_set.sh` (they go to " +
                    std::string(kDefaultFaceModels) + "), give --face-models DIR, or use --detector haar",
                file.string());
  }
  FaceModelsConfig config;
  config.folder = folder;
  try {
    const json j = json::parse(in);
    if (j.at("format").get<std::string>() != "abaw-infer-face-models" || j.at("version").get<int>() != 1) {
      throw Error(ErrorKind::kModel, "not an abaw-infer-face-models version 1 file", file.string());
    }
    config.source = j.value("source", "");
    const json& detector = j.at("detector");
    config.detector_file = detector.at("file").get<std::string>();
    config.detector_input_multiple = detector.at("input_multiple").get<int>();
    config.detector_default_input_size = detector.at("default_input_size").get<int>();
    config.detector_score_threshold = detector.at("score_threshold").get<float>();
    config.detector_iou_threshold = detector.at("iou_threshold").get<float>();
    const json& landmarks = j.at("landmarks");
    config.landmarks_file = landmarks.at("file").get<std::string>();
    config.landmarks_input_size = landmarks.at("input_size").get<int>();
    if (landmarks.at("points").get<int>() != 68)
      throw Error(ErrorKind::kModel, "landmarks.points must be 68", file.string());
    if (j.contains("descriptor")) {
      const json& descriptor = j.at("descriptor");
      config.descriptor_file = descriptor.at("file").get<std::string>();
      config.descriptor_input_size = descriptor.at("input_size").get<int>();
      config.descriptor_dim = descriptor.at("dim").get<int>();
      if (config.descriptor_file.empty() || config.descriptor_input_size < 8 || config.descriptor_dim < 1) {
        throw Error(ErrorKind::kModel, "descriptor file, input_size or dim out of range", file.string());
      }
    }
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kModel, std::string("invalid face-model description: ") + e.what(), file.string());
  }
  if (config.detector_input_multiple < 1 || config.detector_default_input_size < config.detector_input_multiple ||
      config.detector_default_input_size % config.detector_input_multiple != 0 || config.landmarks_input_size < 8 ||
      !(config.detector_iou_threshold > 0 && config.detector_iou_threshold <= 1)) {
    throw Error(ErrorKind::kModel, "detector or landmark sizes out of range", file.string());
  }
  for (const std::string* file_name : {&config.detector_file, &config.landmarks_file, &config.descriptor_file}) {
    const std::string& name = *file_name;
    if (file_name == &config.descriptor_file && name.empty()) continue;  // optional
    if (name.empty() || name.find('/') != std::string::npos || name.front() == '.') {
      throw Error(ErrorKind::kModel, "model file '" + name + "' must be a plain file name in the folder",
                  file.string());
    }
  }
  return config;
}

FaceModels::FaceModels(const fs::path& folder, torch::Device device, int detector_input_size, float score_threshold,
                       FaceNets nets)
    : config_(load_face_models_config(folder)),
      device_(device),
      input_size_(detector_input_size > 0 ? detector_input_size : config_.detector_default_input_size),
      score_threshold_(score_threshold >= 0 ? score_threshold : config_.detector_score_threshold) {
  if (input_size_ % config_.detector_input_multiple != 0 || input_size_ > 4096) {
    throw Error(ErrorKind::kUsage, "the detector's input size must be a multiple of " +
                                       std::to_string(config_.detector_input_multiple) + " up to 4096, not " +
                                       std::to_string(input_size_));
  }
  select_graph_executor();
  detector_ = load(config_.detector_file);
  if (nets.landmarks) landmarks_ = load(config_.landmarks_file);
  if (nets.descriptor && !config_.descriptor_file.empty()) descriptor_net();
}

torch::jit::script::Module& FaceModels::descriptor_net() {
  if (config_.descriptor_file.empty()) {
    throw Error(ErrorKind::kModel,
                "these face models have no face descriptor (remake them with scripts/make_default_model_set.sh)",
                (config_.folder / kFaceModelsFile).string());
  }
  if (!descriptor_) descriptor_ = load(config_.descriptor_file);
  return *descriptor_;
}

torch::jit::script::Module FaceModels::load(const std::string& file) {
  return load_torchscript(config_.folder / file, device_);
}

std::string FaceModels::description() const {
  char threshold[32];
  std::snprintf(threshold, sizeof threshold, "%g", score_threshold_);
  return "tiny-face-detector " + std::to_string(input_size_) + " (score >= " + threshold + ")";
}

std::vector<std::vector<FaceBox>> FaceModels::detect(const std::vector<cv::Mat>& frames, int input_size) {
  std::vector<cv::Rect2f> whole;
  for (const cv::Mat& frame : frames) {
    const float longer = static_cast<float>(std::max(frame.cols, frame.rows));
    whole.emplace_back(0.0f, 0.0f, longer, longer);  // padded at the bottom or right, as face-api does
  }
  return detect_in_regions(frames, whole, input_size);
}

std::vector<std::vector<FaceBox>> FaceModels::detect_in_regions(const std::vector<cv::Mat>& frames,
                                                                const std::vector<cv::Rect2f>& regions,
                                                                int input_size) {
  std::vector<std::vector<FaceBox>> faces(frames.size());
  if (frames.empty()) return faces;
  const int side = input_size > 0 ? input_size : input_size_;
  if (side % config_.detector_input_multiple != 0) {
    throw Error(ErrorKind::kUsage, "the detector's input size must be a multiple of " +
                                       std::to_string(config_.detector_input_multiple) + ", not " +
                                       std::to_string(side));
  }
  c10::InferenceMode guard;
  std::vector<cv::Mat> squares;
  for (size_t i = 0; i < frames.size(); ++i) {
    const cv::Mat& frame = frames[i];
    const cv::Rect2f& region = regions.at(i);
    // Frame pixel x lands on detector pixel (x - region.x) * scale; outside the frame stays black.
    const double scale = side / static_cast<double>(std::max(region.width, region.height));
    const cv::Rect visible =
        cv::Rect(cv::Point(static_cast<int>(std::floor(region.x)), static_cast<int>(std::floor(region.y))),
                 cv::Point(static_cast<int>(std::ceil(region.br().x)), static_cast<int>(std::ceil(region.br().y)))) &
        cv::Rect(0, 0, frame.cols, frame.rows);
    cv::Mat square(side, side, CV_8UC3, cv::Scalar::all(0));
    if (visible.area() > 0) {
      const cv::Matx23d to_square(scale, 0, (visible.x - region.x) * scale, 0, scale, (visible.y - region.y) * scale);
      const cv::Rect target =
          cv::Rect(static_cast<int>(std::floor(to_square(0, 2))), static_cast<int>(std::floor(to_square(1, 2))),
                   std::max(1, static_cast<int>(std::lround(visible.width * scale))),
                   std::max(1, static_cast<int>(std::lround(visible.height * scale)))) &
          cv::Rect(0, 0, side, side);
      // Bilinear, as face-api's tf.image.resizeBilinear (and 3x faster than area averaging at 720p).
      if (target.area() > 0) cv::resize(frame(visible), square(target), target.size(), 0, 0, cv::INTER_LINEAR);
    }
    squares.push_back(square);
  }
  // Channels last: the detector runs on NHWC data (its first step), and the frames already are.
  const torch::Tensor output =
      run_checked(detector_, squares, device_, config_.folder / config_.detector_file, "face detector",
                  {static_cast<int64_t>(frames.size()), -1, 5}, torch::MemoryFormat::ChannelsLast);
  for (size_t i = 0; i < frames.size(); ++i) {
    const torch::Tensor rows = output[static_cast<long>(i)];
    const float* data = rows.data_ptr<float>();
    const cv::Rect2f& region = regions[i];
    const float k = std::max(region.width, region.height) / side;  // frame pixels per detector pixel
    std::vector<FaceBox> candidates;
    for (long r = 0; r < rows.size(0); ++r) {
      const float* box = data + 5 * r;
      if (!(box[4] > score_threshold_)) continue;  // face-api keeps scores above the threshold
      candidates.push_back(
          {cv::Rect2f(region.x + box[0] * k, region.y + box[1] * k, (box[2] - box[0]) * k, (box[3] - box[1]) * k),
           box[4]});
    }
    faces[i] = suppress_overlaps(std::move(candidates), config_.detector_iou_threshold);
  }
  return faces;
}

namespace {

// Each face cut from its frame as face-api cuts it for the landmark and recognition nets: the box
// rounded and clipped to the frame (`regions`), padded to a centred square, resized to `side`.
std::vector<cv::Mat> face_squares(const std::vector<cv::Mat>& frames, const std::vector<size_t>& frame_of,
                                  const std::vector<cv::Rect2f>& faces, int side, std::vector<cv::Rect>& regions) {
  std::vector<cv::Mat> squares;
  regions.clear();
  for (size_t i = 0; i < faces.size(); ++i) {
    const cv::Mat& frame = frames.at(frame_of.at(i));
    const cv::Rect2f& f = faces[i];
    cv::Rect region(static_cast<int>(std::lround(f.x)), static_cast<int>(std::lround(f.y)),
                    static_cast<int>(std::lround(f.width)), static_cast<int>(std::lround(f.height)));
    region &= cv::Rect(0, 0, frame.cols, frame.rows);
    if (region.area() == 0) region = cv::Rect(0, 0, std::min(frame.cols, 1), std::min(frame.rows, 1));
    const int longer = std::max(region.width, region.height);
    // The square around the region alone, so that the padding reads as black, not as the frame.
    const cv::Rect square((region.width - longer) / 2, (region.height - longer) / 2, longer, longer);
    if (longer > 2 * side) {
      squares.push_back(shrink_by_area(frame(region), square, cv::Size(side, side)));
    } else {
      cv::Mat padded(longer, longer, frame.type(), cv::Scalar::all(0));
      frame(region).copyTo(padded(cv::Rect(-square.x, -square.y, region.width, region.height)));
      cv::Mat resized;
      cv::resize(padded, resized, cv::Size(side, side), 0, 0, cv::INTER_LINEAR);
      squares.push_back(resized);
    }
    regions.push_back(region);
  }
  return squares;
}

}  // namespace

std::vector<FaceLandmarks> FaceModels::landmarks(const std::vector<cv::Mat>& frames,
                                                 const std::vector<size_t>& frame_of,
                                                 const std::vector<cv::Rect2f>& faces) {
  std::vector<FaceLandmarks> result(faces.size());
  if (faces.empty()) return result;
  c10::InferenceMode guard;
  std::vector<cv::Rect> regions;
  const std::vector<cv::Mat> squares = face_squares(frames, frame_of, faces, config_.landmarks_input_size, regions);
  if (!landmarks_) landmarks_ = load(config_.landmarks_file);
  const torch::Tensor output = run_checked(*landmarks_, squares, device_, config_.folder / config_.landmarks_file,
                                           "landmark net", {static_cast<int64_t>(faces.size()), 68, 2});
  const float* data = output.data_ptr<float>();
  for (size_t i = 0; i < faces.size(); ++i) {
    const cv::Rect& region = regions[i];
    const float longer = static_cast<float>(std::max(region.width, region.height));
    // The net's [0, 1] is the centred square; the padding is taken off again.
    const float offset_x = region.x - (longer - region.width) / 2.0f;
    const float offset_y = region.y - (longer - region.height) / 2.0f;
    for (int p = 0; p < 68; ++p) {
      result[i][p] =
          cv::Point2f(offset_x + data[(i * 68 + p) * 2] * longer, offset_y + data[(i * 68 + p) * 2 + 1] * longer);
    }
  }
  return result;
}

std::vector<FaceDescriptor> FaceModels::descriptors(const std::vector<cv::Mat>& frames,
                                                    const std::vector<size_t>& frame_of,
                                                    const std::vector<cv::Rect2f>& faces) {
  std::vector<FaceDescriptor> result;
  if (faces.empty()) return result;
  torch::jit::script::Module& net = descriptor_net();
  c10::InferenceMode guard;
  std::vector<cv::Rect> regions;
  const std::vector<cv::Mat> squares = face_squares(frames, frame_of, faces, config_.descriptor_input_size, regions);
  const int dim = config_.descriptor_dim;
  const torch::Tensor output = run_checked(net, squares, device_, config_.folder / config_.descriptor_file,
                                           "face descriptor", {static_cast<int64_t>(faces.size()), dim});
  const float* data = output.data_ptr<float>();
  for (size_t i = 0; i < faces.size(); ++i) result.emplace_back(data + i * dim, data + (i + 1) * dim);
  return result;
}

std::vector<FaceBox> suppress_overlaps(std::vector<FaceBox> boxes, float iou_threshold) {
  std::stable_sort(boxes.begin(), boxes.end(), [](const FaceBox& a, const FaceBox& b) { return a.score > b.score; });
  std::vector<FaceBox> kept;
  for (const FaceBox& box : boxes) {
    const bool overlaps = std::any_of(kept.begin(), kept.end(),
                                      [&](const FaceBox& k) { return box_overlap(k.box, box.box) > iou_threshold; });
    if (!overlaps) kept.push_back(box);
  }
  return kept;
}

namespace {

class TinyFaceDetector : public FaceDetector {
 public:
  TinyFaceDetector(std::shared_ptr<FaceModels> models, int min_face)
      : models_(std::move(models)), min_face_(min_face) {}

  std::vector<FaceBox> detect(const cv::Mat& bgr) override { return detect_batch({bgr}).front(); }

  // At the set size first; a frame without a face is looked at again with a twice larger input
  // (small faces) and a half as large one (faces larger than the biggest anchor box).
  std::vector<std::vector<FaceBox>> detect_batch(const std::vector<cv::Mat>& frames) override {
    const int size = models_->detector_input_size(), multiple = models_->config().detector_input_multiple;
    std::vector<std::vector<FaceBox>> faces = kept(models_->detect(frames, size));
    for (int retry : {size * 2, size / 2 / multiple * multiple}) {
      if (retry < multiple || retry > 4096) continue;
      std::vector<size_t> empty;
      std::vector<cv::Mat> again;
      for (size_t i = 0; i < frames.size(); ++i) {
        if (faces[i].empty()) {
          empty.push_back(i);
          again.push_back(frames[i]);
        }
      }
      if (empty.empty()) break;
      // One frame per call: at twice the size a batch of 8 frames needs some 300 MB of activations
      // at once, which stayed the process's peak memory (crop, run --videos); these frames are rare.
      for (size_t j = 0; j < empty.size(); ++j) faces[empty[j]] = kept(models_->detect({again[j]}, retry)).front();
    }
    return faces;
  }

  bool detects_near() const override { return true; }

  std::vector<std::vector<FaceBox>> detect_near(const std::vector<cv::Mat>& frames,
                                                const std::vector<cv::Rect2f>& near) override {
    std::vector<cv::Rect2f> regions;
    for (const cv::Rect2f& box : near) {
      const float side = kNearRegion * std::max(box.width, box.height);
      const cv::Point2f centre = (box.tl() + box.br()) * 0.5f;
      regions.emplace_back(centre.x - side / 2, centre.y - side / 2, side, side);
    }
    return kept(models_->detect_in_regions(frames, regions, kNearInput));
  }

  std::string description() const override { return models_->description(); }

 private:
  // The region around the tracked face is 1.5 times its side, seen at 160 pixels (a 5 x 5 grid:
  // the face centre falls mid-cell). Measured on 18 frames of 6 real clips against the whole-frame
  // box at 224: IoU 0.86 on average (at least 0.78), scores at least 0.76. A larger region or a
  // smaller input gives larger boxes (IoU 0.6-0.7), and fed back frame after frame the tracked
  // box grew to 1.5x the face.
  static constexpr float kNearRegion = 1.5f;
  static constexpr int kNearInput = 160;

  std::vector<std::vector<FaceBox>> kept(std::vector<std::vector<FaceBox>> faces) const {
    for (auto& frame : faces) {
      frame.erase(std::remove_if(frame.begin(), frame.end(),
                                 [&](const FaceBox& f) { return std::max(f.box.width, f.box.height) < min_face_; }),
                  frame.end());
    }
    return faces;
  }

  std::shared_ptr<FaceModels> models_;
  int min_face_;
};

}  // namespace

std::unique_ptr<FaceDetector> make_tiny_face_detector(std::shared_ptr<FaceModels> models, int min_face) {
  return std::make_unique<TinyFaceDetector>(std::move(models), min_face);
}

std::array<cv::Point2f, 5> five_points(const FaceLandmarks& landmarks) {
  const auto centre = [&](int first) {
    cv::Point2f sum(0, 0);
    for (int p = first; p < first + 6; ++p) sum += landmarks[p];
    return sum / 6.0f;
  };
  return {centre(36), centre(42), landmarks[30], landmarks[48], landmarks[54]};
}

const std::array<cv::Point2f, 5>& alignment_template() {
  static const std::array<cv::Point2f, 5> points{cv::Point2f(38.2946f, 51.6963f), cv::Point2f(73.5318f, 51.5014f),
                                                 cv::Point2f(56.0252f, 71.7366f), cv::Point2f(41.5493f, 92.3655f),
                                                 cv::Point2f(70.7299f, 92.2041f)};
  return points;
}

cv::Matx23d similarity_transform(const std::array<cv::Point2f, 5>& from, const std::array<cv::Point2f, 5>& to,
                                 const std::array<double, 5>& weights) {
  // Weighted least squares for to = [a -b; b a] from + t: with both centred on their weighted
  // means, a and b are the weighted dot and cross sums over the weighted spread of `from` (a 2-D
  // Umeyama without the SVD; no reflection is possible).
  cv::Point2d mean_from(0, 0), mean_to(0, 0);
  double total = 0;
  for (size_t i = 0; i < from.size(); ++i) {
    mean_from += weights[i] * cv::Point2d(from[i]);
    mean_to += weights[i] * cv::Point2d(to[i]);
    total += weights[i];
  }
  mean_from /= total;
  mean_to /= total;
  double dot = 0, cross = 0, spread = 0;
  for (size_t i = 0; i < from.size(); ++i) {
    const cv::Point2d p = cv::Point2d(from[i]) - mean_from, q = cv::Point2d(to[i]) - mean_to;
    dot += weights[i] * (p.x * q.x + p.y * q.y);
    cross += weights[i] * (p.x * q.y - p.y * q.x);
    spread += weights[i] * (p.x * p.x + p.y * p.y);
  }
  if (spread <= 0) spread = 1;  // all points in one place: no rotation or scale to find
  const double a = dot / spread, b = cross / spread;
  return cv::Matx23d(a, -b, mean_to.x - (a * mean_from.x - b * mean_from.y),  //
                     b, a, mean_to.y - (b * mean_from.x + a * mean_from.y));
}

cv::Matx23d alignment_transform(const std::array<cv::Point2f, 5>& points, int size, float margin) {
  std::array<cv::Point2f, 5> target = alignment_template();
  const float scale = size / 112.0f / (1.0f + margin);
  const cv::Point2f centre(56.0f, 56.0f);
  for (auto& p : target) p = (p - centre) * scale + cv::Point2f(size / 2.0f, size / 2.0f);
  return similarity_transform(points, target, kAlignmentWeights);
}

cv::Matx23d alignment_transform(const FaceLandmarks& landmarks, int size, float margin) {
  return alignment_transform(five_points(landmarks), size, margin);
}

cv::Mat shrink_by_area(const cv::Mat& image, const cv::Rect& rect, cv::Size size) {
  if (image.depth() == CV_8U && image.channels() <= 4) {
    cv::Mat out(size, image.type());
    area_shrink({image.data, image.cols, image.rows, image.channels(), image.step}, rect.x, rect.y, rect.width,
                rect.height, size.width, size.height, out.data);
    return out;
  }
  const cv::Rect inside = rect & cv::Rect(0, 0, image.cols, image.rows);
  cv::Mat canvas(rect.size(), image.type(), cv::Scalar::all(0));
  if (inside.area() > 0) image(inside).copyTo(canvas(inside - rect.tl()));
  cv::Mat out;
  cv::resize(canvas, out, size, 0, 0, cv::INTER_AREA);
  return out;
}

cv::Mat aligned_crop(const cv::Mat& bgr, const FaceLandmarks& landmarks, int size, float margin) {
  return aligned_crop(bgr, five_points(landmarks), size, margin);
}

cv::Mat aligned_crop(const cv::Mat& bgr, const std::array<cv::Point2f, 5>& points, int size, float margin) {
  cv::Matx23d transform = alignment_transform(points, size, margin);
  // Bilinear warping samples 4 pixels per output pixel: a 400-pixel face warped to 112 would alias.
  // The face region is first shrunk with area averaging to about the crop's scale.
  const double zoom = std::hypot(transform(0, 0), transform(1, 0));
  cv::Mat source = bgr;
  if (zoom < 0.75) {
    cv::Matx23d inverse;
    cv::invertAffineTransform(transform, inverse);
    std::vector<cv::Point2f> corners;
    for (const cv::Point2d c :
         {cv::Point2d(0, 0), cv::Point2d(size, 0), cv::Point2d(0, size), cv::Point2d(size, size)}) {
      corners.emplace_back(inverse * cv::Vec3d(c.x, c.y, 1.0));
    }
    const cv::Rect region = cv::boundingRect(corners) & cv::Rect(0, 0, bgr.cols, bgr.rows);
    if (region.width > 1 && region.height > 1) {
      const cv::Size shrunk(std::max(1, static_cast<int>(std::lround(region.width * zoom))),
                            std::max(1, static_cast<int>(std::lround(region.height * zoom))));
      source = shrink_by_area(bgr, region, shrunk);
      const double fx = static_cast<double>(region.width) / shrunk.width;
      const double fy = static_cast<double>(region.height) / shrunk.height;
      // A shrunk pixel x' is frame pixel region.tl + x' * f (area resizing's pixel centres agree).
      const cv::Matx23d through = transform;
      for (int r = 0; r < 2; ++r) {
        transform(r, 2) =
            through(r, 0) * (region.x + 0.5 * fx - 0.5) + through(r, 1) * (region.y + 0.5 * fy - 0.5) + through(r, 2);
        transform(r, 0) = through(r, 0) * fx;
        transform(r, 1) = through(r, 1) * fy;
      }
    }
  }
  cv::Mat out;
  cv::warpAffine(source, out, cv::Mat(transform), cv::Size(size, size), cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                 cv::Scalar::all(0));
  return out;
}

}  // namespace abaw
