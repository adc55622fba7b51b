// `crop`: turn plain videos into the Aff-Wild2 crop layout. Every frame is decoded, one face is
// tracked per video, and a square crop with a margin is written as `<video>/00001.jpg` (1-based);
// frames without a face get no file, as in Aff-Wild2. The frame count and the boxes are written
// too, so a later `run` knows every frame, gaps included. A video folder only ever holds one crop
// run: a video is cropped into a hidden staging folder that replaces the old folder when done.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <opencv2/core.hpp>

#include "abaw/face_spec.hpp"
#include "abaw/frame_names.hpp"

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
  // cutting the crops, writing them (crop) and the whole video.
  double decode_seconds = 0, detect_seconds = 0, landmark_seconds = 0, crop_seconds = 0, write_seconds = 0,
         total_seconds = 0;
};

// One decoded frame and what was found in it.
struct FaceFrame {
  long number = 0;                      // 1-based
  std::optional<FaceBox> face;          // the tracked face, if one was found
  std::array<cv::Point2f, 5> points{};  // aligned crops: the five alignment points, frame pixels
  cv::Mat crop;                         // size x size BGR; empty without a face
};

// One video's frames, streamed: decoded on a thread of their own (at most two batches ahead, so
// memory stays bounded however long the video), then `batch_frames` at a time the faces found,
// one face tracked (FaceTrack) and its crop cut. `crop` writes these crops as files; `run
// --videos` encodes them directly. Both go through this class, so they cut the same crops.
class VideoFaces {
 public:
  // Opens `video`; its name is the file's stem. Throws Error(kInput) when the name is not a
  // valid video name, the file is empty or cannot be opened; Error(kUsage) for aligned crops
  // without the landmark net.
  VideoFaces(const std::filesystem::path& video, FaceDetector& detector, const CropOptions& options);
  ~VideoFaces();
  VideoFaces(const VideoFaces&) = delete;
  VideoFaces& operator=(const VideoFaces&) = delete;

  // The next frames, in order (at most batch_frames); empty at the end of the video. Throws
  // Error(kInput) when the video yields no frame at all or has more than kMaxFrameNumber frames;
  // at the end, warns when it stopped before the frame count its container announces (a
  // truncated file) or no frame had a face.
  std::vector<FaceFrame> next();

  // Counts and seconds so far (write_seconds is the caller's: cutting counts as crop_seconds).
  const CroppedVideo& counts() const { return result_; }

  // The header of `<name>.boxes.csv`, and the line of one frame (both end with a newline).
  std::string boxes_header() const;
  std::string boxes_line(const FaceFrame& frame) const;

 private:
  struct Decoder;
  CropOptions options_;
  FaceDetector& detector_;
  CroppedVideo result_;
  FaceTrack track_;
  long last_whole_frame_;
  std::unique_ptr<Decoder> decoder_;
  bool ended_ = false;
};

// A crop folder being written: crop files go to a hidden staging folder
// `<output>/.<name>.cropping-<pid>/`, which commit() flushes to disk (one syncfs) and moves onto
// `<output>/<name>/` in one rename, so crops of an earlier run (another detector, a longer file)
// never mix with this one's, and a failed or killed run leaves the earlier folder as it was.
class CropFolderWriter {
 public:
  // Creates the staging folder. Throws Error(kOutput).
  CropFolderWriter(const std::filesystem::path& output, const VideoName& name);
  // Removes the staging folder unless committed.
  ~CropFolderWriter();
  CropFolderWriter(const CropFolderWriter&) = delete;
  CropFolderWriter& operator=(const CropFolderWriter&) = delete;

  // Writes `<frame>.jpg` (format_crop_file_name) into the staging folder. Throws Error(kOutput).
  void write(long frame, const std::vector<uint8_t>& jpeg);
  // Puts the folder in place and writes `<output>/<name>.boxes.csv` atomically.
  void commit(const std::string& boxes_csv);

 private:
  std::filesystem::path output_;
  VideoName name_;
  std::filesystem::path staging_;
  bool committed_ = false;
};

// Crops one video into `<output>/<name>/` (name: the file's stem, a valid video name) with
// VideoFaces and CropFolderWriter: JPEG crops `00001.jpg ...` (1-based; frames without a face get
// no file, as in Aff-Wild2), `<output>/<name>.boxes.csv` (`frame,x,y,width,height,score`, with
// aligned crops also the five alignment points `left_eye_x,left_eye_y,...,mouth_right_y`; empty
// fields where no face was found). Returns counts. Throws as VideoFaces and CropFolderWriter.
CroppedVideo crop_video(const std::filesystem::path& video, FaceDetector& detector, const CropOptions& options);

// A ready face pipeline: the detector, the face models it and the landmarks use (if any), and the
// per-video crop options (output left empty).
struct FaceFinder {
  std::shared_ptr<FaceModels> models;
  std::unique_ptr<FaceDetector> detector;
  CropOptions crop;
  int threads = 1;  // LibTorch threads of the face models
  // "tiny-face-detector 224 (...), box crops 112 px, margin 0.1, detect every 10, ...": what
  // decides the crops, for logs and the --resume / --features keys.
  std::string description;
};

// Loads the detector and face models `options` and `set_default` (a manifest's "faces") ask for,
// on `device`. Throws Error(kUsage) for yunet without a model file, Error(kModel) for models that
// cannot be loaded.
FaceFinder make_face_finder(const FaceFinderOptions& options, const FacePipelineSpec& set_default,
                            c10::Device device);

// The video files `crop` and `run --videos` take from each of `inputs`: a file as is, a folder's
// files ending in .mp4 .avi .mov .mkv .webm (and .jpg .jpeg .png: one-frame videos), any case,
// hidden files skipped, sorted. Throws Error(kInput) for a folder without one, Error(kUsage) when
// two files have the same stem (their crops and outputs would share one name).
std::vector<std::filesystem::path> list_video_files(const std::vector<std::filesystem::path>& inputs);

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
