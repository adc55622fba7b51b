// `crop`: turn plain videos into the Aff-Wild2 crop layout. Every frame is decoded, one face is
// tracked per video, and a square crop with a margin is written as `<video>/00001.jpg` (1-based);
// frames without a face get no file, as in Aff-Wild2. The frame count and the boxes are written
// too, so a later `run` knows every frame, gaps included. A video folder only ever holds one crop
// run: a video is cropped into a hidden staging folder that replaces the old folder when done.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "abaw/enum_names.hpp"

namespace abaw {

// A face found in a frame, in frame pixels.
struct FaceBox {
  cv::Rect2f box;
  float score = 0;
};

// Intersection over union of two boxes (0 when both are empty).
float box_overlap(const cv::Rect2f& a, const cv::Rect2f& b);

// A face detector: Haar cascade (no model download), a YuNet ONNX file, or face-api's
// TinyFaceDetector (face_models.hpp).
class FaceDetector {
 public:
  virtual ~FaceDetector() = default;
  // All faces in a BGR frame.
  virtual std::vector<FaceBox> detect(const cv::Mat& bgr) = 0;
  // All faces in each of several frames: one model call for all of them where the detector can.
  virtual std::vector<std::vector<FaceBox>> detect_batch(const std::vector<cv::Mat>& frames) {
    std::vector<std::vector<FaceBox>> faces;
    for (const cv::Mat& frame : frames) faces.push_back(detect(frame));
    return faces;
  }
  // Whether detect_near() is much cheaper than looking at the whole frame.
  virtual bool detects_near() const { return false; }
  // The faces in each frame near `near[i]`, the tracked face's last box in that video.
  virtual std::vector<std::vector<FaceBox>> detect_near(const std::vector<cv::Mat>& frames,
                                                        const std::vector<cv::Rect2f>& near) {
    (void)near;
    return detect_batch(frames);
  }
  // "haar (...)" or "yunet (...)", for logs and the summary.
  virtual std::string description() const = 0;
};

// OpenCV's frontal-face Haar cascade. `cascade_file` empty: the one Debian's opencv-data
// installs. Throws Error(kUsage) when it cannot be loaded.
std::unique_ptr<FaceDetector> make_haar_detector(const std::filesystem::path& cascade_file, int min_face);

// YuNet (2023 layout, fixed 640x640 input) run with cv::dnn and decoded here: OpenCV 4.6's
// FaceDetectorYN cannot parse this output layout. Throws Error(kModel) naming the file.
std::unique_ptr<FaceDetector> make_yunet_detector(const std::filesystem::path& onnx_file, float score_threshold,
                                                  int min_face);

// Keeps one face per video: the largest face until a face has been seen, then the face that
// overlaps the previous box most (or, with no overlap, the nearest centre within two box sizes;
// otherwise the largest again).
class FaceTrack {
 public:
  std::optional<FaceBox> pick(const std::vector<FaceBox>& faces);
  // The box last picked, if any.
  const std::optional<cv::Rect2f>& last() const { return previous_; }

 private:
  std::optional<cv::Rect2f> previous_;
};

// The square crop around `box`: side = max(w, h) * (1 + margin), centred, parts outside the
// frame filled black, resized to `size` x `size`.
cv::Mat square_crop(const cv::Mat& bgr, const cv::Rect2f& box, float margin, int size);

class FaceModels;

// How a crop is cut from the frame.
enum class CropStyle {
  kBox,      // the square around the detector's box, with a margin (Aff-Wild2's `cropped`)
  kAligned,  // five landmarks mapped onto a fixed template (Aff-Wild2's `cropped_aligned`)
};

// The names `crop --style` takes.
inline constexpr EnumName<CropStyle> kCropStyleNames[] = {{"box", CropStyle::kBox}, {"aligned", CropStyle::kAligned}};

// What `crop` does for each video.
struct CropOptions {
  std::filesystem::path output;
  CropStyle style = CropStyle::kBox;
  int size = 112;
  float margin = 0.1f;  // the default set scored best with tight crops (7/7 labelled photos at 10 %)
  int jpeg_quality = 95;
  int batch_frames = 8;  // frames decoded, detected and cropped together
  // With a detector that detects_near(): the whole frame is searched every this many frames
  // (and whenever the tracked face is not found near its last box); 1: every frame.
  int detect_every = 1;
  FaceModels* landmarks = nullptr;  // the landmark net; needed for kAligned
  std::string face_models;          // for crop.json: the face-model folder and files used, if any
};

// The result for one video.
struct CroppedVideo {
  std::string name;
  std::filesystem::path source;  // the video file
  std::string detector;          // FaceDetector::description()
  long frames_expected = 0;      // the container's frame count (0: unknown); can be off by one
  long frames_decoded = 0;
  long frames_with_face = 0;
  long frames_with_several_faces = 0;
  long frames_searched_whole = 0;  // the others were searched only near the tracked face
  // Seconds per stage: decoding (its own thread, overlapping the rest), detection, landmarks,
  // cutting and writing the crops, and the whole video.
  double decode_seconds = 0, detect_seconds = 0, landmark_seconds = 0, write_seconds = 0, total_seconds = 0;
};

// Crops one video into `<output>/<name>/` (name: the file's stem, a valid video name), writes
// `<output>/<name>.boxes.csv` (`frame,x,y,width,height,score`, with aligned crops also the five
// alignment points `left_eye_x,left_eye_y,right_eye_x,...,mouth_right_y`; empty fields where no
// face was found) and returns counts. Frames are decoded on a thread of their own, and detected
// and cropped `batch_frames` at a time. The crop files are written plainly into the staging
// folder and flushed to disk once (syncfs) before it takes the old folder's place. The crops go
// to `<output>/.<name>.cropping-<pid>/` first, which then takes the place of an earlier `<name>/`
// in one rename: crops of an earlier run (another
// detector, a longer file) never mix with this one's, and a failed or killed crop leaves the
// earlier folder as it was. Throws Error(kInput) when the name is not a valid video name, the
// video cannot be opened or yields no frame; warns when it ends before the frame count its
// container announces (a truncated file).
CroppedVideo crop_video(const std::filesystem::path& video, FaceDetector& detector, const CropOptions& options);

// Removes staging folders (`.<name>.cropping-<pid>`) that a killed `crop` left in `output`.
void remove_stale_crop_staging(const std::filesystem::path& output);

// Writes `<output>/frame_counts.csv` (kFrameCountFile), merging with one already there (other videos keep their counts).
void write_frame_counts(const std::filesystem::path& output, const std::vector<CroppedVideo>& videos);

// The file `crop` writes beside kFrameCountFile: per video, how its current crops were made.
inline constexpr char kCropRecordFile[] = "crop.json";

// Writes `<output>/crop.json` (kCropRecordFile): per video the source file, detector, size,
// margin, JPEG quality and frame counts of the crop run its folder holds, merged with the
// entries of other videos already there.
void write_crop_record(const std::filesystem::path& output, const std::vector<CroppedVideo>& videos,
                       const CropOptions& options);

}  // namespace abaw
