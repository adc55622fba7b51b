// face-api.js's face networks (npm @vladmandic/face-api@1.7.15, MIT), converted to TorchScript by
// scripts/convert_faceapi_faces.py into a folder with `faces.json`: TinyFaceDetector and the
// 68-point landmark net, run batched through LibTorch on the CPU or CUDA. `crop --detector tiny`
// finds faces with them, and `crop --style aligned` aligns crops on their landmarks.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/script.h>

#include "abaw/face_crop.hpp"

namespace abaw {

// The file that describes a face-model folder.
inline constexpr char kFaceModelsFile[] = "faces.json";

// Where `scripts/make_default_model_set.sh` puts the face models, relative to the repository.
inline constexpr char kDefaultFaceModels[] = "models/default/faces";

// `faces.json`: the files and face-api's own settings for them.
struct FaceModelsConfig {
  std::filesystem::path folder;
  std::string source;  // where the weights come from, for crop.json
  std::string detector_file;
  int detector_input_multiple = 32;  // the detector's input side must be a multiple of this
  int detector_default_input_size = 416;
  float detector_score_threshold = 0.5f;
  float detector_iou_threshold = 0.4f;  // overlapping boxes above this IoU are suppressed
  std::string landmarks_file;
  int landmarks_input_size = 112;
  // The face descriptor (FaceRecognitionNet): optional in the file, needed for `--faces N`.
  std::string descriptor_file;  // empty: the folder has none
  int descriptor_input_size = 150;
  int descriptor_dim = 128;
};

// Reads and validates `<folder>/faces.json`. Throws Error(kModel) naming the file (a missing
// folder or file says how to make one).
FaceModelsConfig load_face_models_config(const std::filesystem::path& folder);

// 68 points in frame pixels, iBUG-68 order (0-based: jaw 0-16, brows 17-26, nose 27-35, eyes
// 36-47, mouth 48-67).
using FaceLandmarks = std::array<cv::Point2f, 68>;

// face-api's 128-d face descriptor: two faces of one person lie within face-api's match distance
// of 0.6 (euclidean) more often than not; of two people, further apart.
using FaceDescriptor = std::vector<float>;

// The nets FaceModels loads with the detector, so that a broken file stops a command before any
// video; the others load on their first use (torch.jit.load of the landmark net: ~55 ms, the
// descriptor: ~80 ms, of a command's start-up).
struct FaceNets {
  bool landmarks = true;
  bool descriptor = false;
};

// A face found by the detector, with its landmarks when they were asked for.
class FaceModels {
 public:
  // Loads the detector and `nets` (the descriptor when faces.json names one). `detector_input_size`
  // 0: faces.json's default; otherwise a multiple of its input_multiple, else Error(kUsage).
  // `score_threshold` < 0: faces.json's. Throws Error(kModel) naming the file when one cannot be
  // loaded.
  FaceModels(const std::filesystem::path& folder, torch::Device device, int detector_input_size, float score_threshold,
             FaceNets nets = {});

  const FaceModelsConfig& config() const { return config_; }
  int detector_input_size() const { return input_size_; }
  float score_threshold() const { return score_threshold_; }

  // The faces in each BGR frame, in frame pixels, best score first: each frame is scaled so its
  // longer side is `input_size` (0: detector_input_size()) and padded at the bottom or right to
  // a square (as face-api does), one forward pass for all frames; boxes scoring at most the
  // threshold go, and of boxes overlapping by more than the IoU threshold only the best stays.
  std::vector<std::vector<FaceBox>> detect(const std::vector<cv::Mat>& frames, int input_size = 0);

  // The same within one square region per frame (frame pixels; parts outside the frame are
  // black), scaled to `input_size`: a small input around a tracked face instead of the frame.
  std::vector<std::vector<FaceBox>> detect_in_regions(const std::vector<cv::Mat>& frames,
                                                      const std::vector<cv::Rect2f>& regions, int input_size);

  // The landmarks of each face: `faces[i]` is a box in frame `frame_of[i]`. The box (clipped to the
  // frame) is padded to a centred square and resized to the net's input, as face-api does; one
  // forward pass for all faces. The net is loaded on the first call unless it already was.
  std::vector<FaceLandmarks> landmarks(const std::vector<cv::Mat>& frames, const std::vector<size_t>& frame_of,
                                       const std::vector<cv::Rect2f>& faces);

  // The descriptor of each face, cut as landmarks() cuts it (at the descriptor's input size);
  // one forward pass for all faces. The net is loaded on the first call unless it already was.
  // Throws Error(kModel) when faces.json names no descriptor or it cannot be loaded.
  std::vector<FaceDescriptor> descriptors(const std::vector<cv::Mat>& frames, const std::vector<size_t>& frame_of,
                                          const std::vector<cv::Rect2f>& faces);

  // "tiny-face-detector 320 (score >= 0.5)", for logs and crop.json.
  std::string description() const;

 private:
  torch::jit::script::Module load(const std::string& file);
  torch::jit::script::Module& descriptor_net();  // loaded on first use; Error(kModel) without one

  FaceModelsConfig config_;
  torch::Device device_;
  int input_size_;
  float score_threshold_;
  torch::jit::script::Module detector_;
  std::optional<torch::jit::script::Module> landmarks_;
  std::optional<torch::jit::script::Module> descriptor_;
};

// Greedy non-maximum suppression: boxes by descending score, each kept unless it overlaps a kept
// one by more than `iou_threshold` (intersection over union).
std::vector<FaceBox> suppress_overlaps(std::vector<FaceBox> boxes, float iou_threshold);

// The TinyFaceDetector behind the FaceDetector interface: batched; a frame where nothing is
// found is searched again at twice and at half the input size; detect_near() looks at a region
// of 1.5 times the tracked face's side at 160 pixels. Faces smaller than `min_face` are dropped.
std::unique_ptr<FaceDetector> make_tiny_face_detector(std::shared_ptr<FaceModels> models, int min_face);

// The five points alignment uses, from 68 landmarks: the centres of the eyes (image left first),
// the nose tip (30), and the mouth corners (48, 54).
std::array<cv::Point2f, 5> five_points(const FaceLandmarks& landmarks);

// Where `crop --style aligned` puts those five points in a 112 x 112 crop: InsightFace's ArcFace
// template (the layout most aligned-face models are trained on): eyes at (38.29, 51.70) and
// (73.53, 51.50), nose tip (56.03, 71.74), mouth corners (41.55, 92.37) and (70.73, 92.20).
const std::array<cv::Point2f, 5>& alignment_template();

// How much each of the five points counts when a face is aligned: each eye four times as much as
// the nose tip or a mouth corner, so that a smile or an open mouth (mouth corners far from the
// template's) does not pull the eyes off theirs. Measured on 3 real photos turned by -30..30
// degrees (tests/e2e/test_face_models.py): eye centres at most 2.0 pixels from the template's
// with these weights, 2.8 with equal ones (8 instead of 4: 2.2, within the landmark net's noise).
inline constexpr std::array<double, 5> kAlignmentWeights{4, 4, 1, 1, 1};

// The similarity transform (rotation, uniform scale, translation) that maps `from` onto `to`
// with the least weighted squared error, as a 2 x 3 matrix for cv::warpAffine.
cv::Matx23d similarity_transform(const std::array<cv::Point2f, 5>& from, const std::array<cv::Point2f, 5>& to,
                                 const std::array<double, 5>& weights = {1, 1, 1, 1, 1});

// `rect` of `image` shrunk to `size` (no larger on either axis) by area averaging; where `rect`
// reaches outside `image` it is black. 8-bit images of 1-4 channels go through area_shrink
// (cv::resize's INTER_AREA to +-1, several times faster, no canvas); others are cut into a black
// canvas for cv::resize(INTER_AREA).
cv::Mat shrink_by_area(const cv::Mat& image, const cv::Rect& rect, cv::Size size);

// The transform aligned_crop() warps with: frame pixels -> crop pixels.
cv::Matx23d alignment_transform(const FaceLandmarks& landmarks, int size, float margin);
// The same from the five points (five_points()) alone.
cv::Matx23d alignment_transform(const std::array<cv::Point2f, 5>& points, int size, float margin);

// The aligned crop: the five points mapped onto the template (weighted by kAlignmentWeights),
// the template scaled to `size` and shrunk about its centre by 1 / (1 + margin) (margin 0:
// exactly the template), the frame warped onto it bilinearly (the face region shrunk
// with area averaging first when the crop is much smaller than the face), outside filled black.
cv::Mat aligned_crop(const cv::Mat& bgr, const FaceLandmarks& landmarks, int size, float margin);
// The same from the five points (five_points()) alone: `run --videos --faces N` cuts a person's
// crops again from the points its people pass kept, pixel for pixel as `crop` cuts them.
cv::Mat aligned_crop(const cv::Mat& bgr, const std::array<cv::Point2f, 5>& points, int size, float margin);

}  // namespace abaw
