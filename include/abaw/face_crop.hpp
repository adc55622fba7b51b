// `crop`: turn plain videos into the Aff-Wild2 crop layout. Every frame is decoded, one face is
// tracked per video (with `--faces N` up to N people, each into a folder of their own), and a
// square (or aligned) crop with a margin is written as `<video>/00001.jpg` (1-based);
// frames without a face get no file, as in Aff-Wild2. The frame count and the boxes are written
// too, so a later `run` knows every frame, gaps included. A video folder only ever holds one crop
// run: a video is cropped into a hidden staging folder that replaces the old folder when done.
#pragma once

#include <array>
#include <filesystem>
#include <functional>
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

// The faces of a frame `t` (0..1) of the way from one searched frame's faces `a` to a later
// one's `b` (`--near-every`): each face of `a` that overlaps one of `b` by at least half (the same
// face, moved a little) gives the box between the two, scored as the lower of them. Empty when
// no face pairs up (a jump, a face lost): that frame is then searched.
std::vector<FaceBox> interpolate_faces(const std::vector<FaceBox>& a, const std::vector<FaceBox>& b, float t);

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

// Follows up to `max_people` people through a video (`crop --faces N`), each face matched to a
// person by its face descriptor first and its box second, so that identities survive misses,
// crossings, a person leaving and coming back, and two people swapping places between frames.
// A frame's faces are matched one to one, closest pairs first:
//  1. a face and a person whose mean descriptor lies within kMatchDistance, less a bonus for
//     the overlap with the person's box of the last kRecentFrames frames (so continuity breaks
//     near ties, never against a clearly closer descriptor);
//  2. then, by box overlap, a face overlapping a recent box by at least kMinOverlap whose
//     descriptor lies within kLooseDistance (a turned head still in place);
//  3. a face left over starts a new person while fewer than `max_people` are being followed;
//     once all places are taken it goes to the nearest person not yet matched in this frame
//     within kLooseDistance (someone coming back looking different), else it is nobody's.
// A new person counts once seen on kConfirmFrames frames; one that is not seen again within
// kTentativeGap frames before that is dropped (a false detection), freeing its place.
// Frames where every face plainly continues a face of the frame before (continued_faces) can be
// carried over without descriptors (carry); VideoFaces checks such frames against descriptors.
class PeopleTracker {
 public:
  static constexpr float kMatchDistance = 0.6f;  // face-api's FaceMatcher threshold
  static constexpr float kLooseDistance = 0.8f;
  static constexpr float kOverlapBonus = 0.15f;
  static constexpr float kMinOverlap = 0.4f;
  static constexpr long kRecentFrames = 5;
  static constexpr long kConfirmFrames = 5;
  static constexpr long kTentativeGap = 15;

  // What is known about one person.
  struct Person {
    long first_frame = 0, last_frame = 0;
    long frames = 0;          // frames where the person was found
    double sum_centre_x = 0;  // of the face boxes, for mean_centre_x()
    cv::Rect2f last_box;
    std::vector<float> descriptor;  // mean of the descriptors matched so far
    long described = 0;             // frames whose descriptor is in that mean
    bool dropped = false;           // a false detection, let go before it was confirmed
    bool confirmed() const { return !dropped && frames >= kConfirmFrames; }
    double mean_centre_x() const { return frames > 0 ? sum_centre_x / frames : 0; }
  };

  explicit PeopleTracker(int max_people) : max_people_(max_people) {}

  // Matches the faces found in frame `frame` (in increasing frame order), with their descriptors,
  // to people: the index into people() of each face's person, or -1 for nobody.
  std::vector<int> assign(long frame, const std::vector<FaceBox>& faces,
                          const std::vector<std::vector<float>>& descriptors);

  // Records frame `frame` (in increasing frame order) as `faces` belonging to `who` (indices into
  // people(), -1 for nobody; people not dropped, at most one face each), as assign() would record
  // them, but without descriptors: the people's mean descriptors stay as they are.
  void carry(long frame, const std::vector<FaceBox>& faces, const std::vector<int>& who);

  // Everyone followed so far, in order of first appearance (dropped ones included, marked).
  const std::vector<Person>& people() const { return people_; }

 private:
  // Drops the tentative people not seen for kTentativeGap frames before `frame`.
  void drop_stale(long frame);
  // `descriptor` null: the frame was carried.
  void update(Person& person, long frame, const FaceBox& face, const std::vector<float>* descriptor);
  int max_people_;
  std::vector<Person> people_;
};

// For each face of `current`, the index of the face of `previous` (the frame before) that it
// plainly continues, or -1: its box overlaps that face's by kContinuedOverlap or more (IoU) and no
// other face of either frame by kNearOverlap or more, and that face overlaps no other face of
// `current` by kNearOverlap or more. Faces that come close to each other continue nothing.
inline constexpr float kContinuedOverlap = 0.5f;
inline constexpr float kNearOverlap = 0.1f;
std::vector<int> continued_faces(const std::vector<FaceBox>& previous, const std::vector<FaceBox>& current);

// For each face of `current`, the index of the face of `previous` that it overlaps most, if that
// face overlaps no face of `current` more and the overlap is kContinuedOverlap or more; else -1.
// Looser than continued_faces (other faces may be near): what a frame with descriptors checks.
std::vector<int> closest_faces(const std::vector<FaceBox>& previous, const std::vector<FaceBox>& current);

// The most people `crop --faces N` follows in one video.
inline constexpr int kMaxPeople = 16;

// The folder names for the people of video `video` that `crop --faces N` found, given in the
// order of their mean horizontal position (left first): `<video>` for one person (or none),
// `<video>_left` and `<video>_right` for two (Aff-Wild2's names), `<video>_face1..K` for more.
std::vector<std::string> person_folder_names(const std::string& video, size_t people);

// The square crop around `box`: side = max(w, h) * (1 + margin), centred, parts outside the
// frame filled black, resized to `size` x `size`: shrunk by area averaging (shrink_by_area),
// enlarged bicubically.
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
  // Between those searches only every this many frames of a batch (and its first and last) are
  // searched near the face; the boxes of the frames between are interpolated where the searched
  // frames on both sides found the face (and searched where not); 1: every frame is searched.
  int near_every = 1;
  // With more than 1, up to this many people are followed (PeopleTracker), each with crops of
  // their own; 1 keeps one face per video (FaceTrack).
  int max_people = 1;
  // The landmark net and face descriptor: needed for kAligned and for max_people > 1.
  FaceModels* face_nets = nullptr;
  std::string face_models;          // for crop.json: the face-model folder and files used, if any
  // false: VideoFaces finds the faces (and aligned crops' points) but cuts no crop, for a pass
  // that keeps only where the faces are (find_people).
  bool cut_crops = true;
};

// The result for one video, or with `--faces N` for one person in it.
struct CroppedVideo {
  std::string name;              // the crop folder's name: the video's, or a person's (person_folder_names)
  std::filesystem::path source;  // the video file
  std::string detector;          // FaceDetector::description()
  long frames_expected = 0;      // the container's frame count (0: unknown); can be off by one
  long frames_decoded = 0;
  long frames_with_face = 0;  // with `--faces N`: frames where this person was found
  long frames_with_several_faces = 0;
  long frames_searched_whole = 0;  // the others were searched only near the tracked face, or interpolated
  long frames_interpolated = 0;    // boxes interpolated between searched frames (CropOptions::near_every)
  // `--faces N`: the faces found, and those given a descriptor (the others were carried over).
  long faces_found = 0, faces_described = 0;
  // The shortest and longest time between two decoded frames, from the container's presentation
  // times (0: it gives none).
  double min_frame_interval_ms = 0, max_frame_interval_ms = 0;
  // A variable frame rate: frames further apart than 1.5 times the shortest interval, by more
  // than the millisecond rounding of containers. Frames are still numbered by decoding order.
  bool variable_frame_rate() const {
    return min_frame_interval_ms > 0 && max_frame_interval_ms > 1.5 * min_frame_interval_ms &&
           max_frame_interval_ms - min_frame_interval_ms > 2.0;
  }
  // Seconds per stage: decoding (its own thread, overlapping the rest), detection, landmarks,
  // face descriptors (`--faces N`), cutting the crops, writing them (crop) and the whole video.
  double decode_seconds = 0, detect_seconds = 0, landmark_seconds = 0, descriptor_seconds = 0, crop_seconds = 0,
         write_seconds = 0,
         total_seconds = 0;
};

// One decoded frame and what was found in it.
struct FaceFrame {
  long number = 0;                      // 1-based
  int person = 0;                       // max_people > 1: the index into PeopleTracker::people(); -1: nobody
  std::optional<FaceBox> face;          // the tracked face, if one was found
  std::array<cv::Point2f, 5> points{};  // aligned crops: the five alignment points, frame pixels
  cv::Mat crop;                         // size x size BGR; empty without a face
};

// The header of a boxes CSV (`frame,x,y,width,height,score`, and with aligned crops the five
// points), and the line of one frame (empty fields without a face); both end with a newline.
std::string boxes_csv_header(const CropOptions& options);
std::string boxes_csv_line(const FaceFrame& frame, const CropOptions& options);

// The boxes CSV of one person followed with `--faces N`: a line for each of the video's `frames`,
// from `found` (the frames where they were found, in order) or empty.
std::string person_boxes_csv(const std::vector<FaceFrame>& found, long frames, const CropOptions& options);

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

  // The next frames, in order (at most batch_frames); empty at the end of the video. With
  // max_people 1, one FaceFrame per decoded frame; with more, one per person found in a frame,
  // and one without a face (person -1) for a frame where nobody is. Throws
  // Error(kInput) when the video yields no frame at all or has more than kMaxFrameNumber frames;
  // at the end, warns when it stopped before the frame count its container announces (a
  // truncated file), the frame rate varies, or no frame had a face.
  std::vector<FaceFrame> next();

  // Counts and seconds so far (write_seconds is the caller's: cutting counts as crop_seconds).
  const CroppedVideo& counts() const { return result_; }

  // max_people > 1: the people followed so far.
  const PeopleTracker& people() const { return people_; }

  // The header of `<name>.boxes.csv`, and the line of one frame (both end with a newline).
  std::string boxes_header() const { return boxes_csv_header(options_); }
  std::string boxes_line(const FaceFrame& frame) const { return boxes_csv_line(frame, options_); }

 private:
  struct Decoder;
  // max_people > 1: the faces of a batch matched to people. A frame whose faces all plainly
  // continue faces of the frame before (continued_faces) takes their people without descriptors,
  // except a batch's last frame. Every frame that gets descriptors checks its faces against the
  // faces of the frame before that they overlap most (closest_faces): if one turns out to be
  // someone else's (people swapped places), the whole batch is matched again with every face's
  // descriptor, so a wrong carry does not outlive its batch.
  std::vector<FaceFrame> follow_people(const std::vector<cv::Mat>& frames,
                                       const std::vector<std::vector<FaceBox>>& faces, long first);
  CropOptions options_;
  FaceDetector& detector_;
  CroppedVideo result_;
  FaceTrack track_;
  PeopleTracker people_;
  // max_people > 1: the faces of the last frame matched, and their people (-1: nobody).
  std::vector<FaceBox> previous_faces_;
  std::vector<int> previous_people_;
  long last_whole_frame_;
  std::unique_ptr<Decoder> decoder_;
  bool ended_ = false;
};

// The crop of one found face from its frame, as `crop` cuts it: the square around its box, or
// with aligned crops its five points moved onto the template.
cv::Mat cut_face(const cv::Mat& bgr, const FaceFrame& face, const CropOptions& options);

// The people a finished PeopleTracker followed that count (confirmed), each with their folder
// name: left to right by the mean horizontal centre of their boxes, named by person_folder_names.
std::vector<std::pair<int, std::string>> name_people(const PeopleTracker& tracker, const std::string& video);

// One person of a video, for `run --videos --faces N`: where they were found, frame by frame.
struct PersonFaces {
  std::string name;               // as person_folder_names names their crop folder
  std::vector<FaceFrame> frames;  // the frames where they were found: number, face, points; no crop
};

// The people pass of `run --videos --faces N`: follows the people of `video` exactly as `crop
// --faces N` does (VideoFaces), keeping where each was found but not their crops, so that each
// person can be streamed on their own afterwards (cut_face on the frames decoded again). Sets
// `counts` to the video's counts. `stop`, when given, is asked after each batch of frames: true
// ends the pass early (the people found so far, unusable but harmless). Throws as VideoFaces.
std::vector<PersonFaces> find_people(const std::filesystem::path& video, FaceDetector& detector,
                                     const CropOptions& options, CroppedVideo& counts,
                                     const std::function<bool()>& stop = {});

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
  // Puts the folder in place and writes `<output>/<name>.boxes.csv` atomically; `as`: under that
  // name instead of the one given at construction (a person's, known once the video has ended).
  void commit(const std::string& boxes_csv, const std::optional<VideoName>& as = std::nullopt);

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
// fields where no face was found). With max_people > 1, one such folder and boxes CSV per
// confirmed person, named by person_folder_names; each CSV has a line for every frame of the
// video. Returns the counts of each folder written. Throws as VideoFaces and CropFolderWriter.
std::vector<CroppedVideo> crop_video(const std::filesystem::path& video, FaceDetector& detector, const CropOptions& options);

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

// The LibTorch threads `options` gives the face models: `threads` when set (0: one per usable
// CPU); unset, one per usable CPU when following several people, where the face descriptor is most
// of the work, else 1 (decoding and JPEG writing have threads of their own). `crop` and `run
// --videos` share it, so that both cut the same crops: a convolution's last bits can depend on
// how many threads split it (aligned crops do differ between 1 and 2).
int face_model_threads(const FaceFinderOptions& options);

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

// Writes `<output>/frame_counts.csv` (kFrameCountFile), merging with one already there (other
// videos keep their counts; those named in `removed` lose theirs).
void write_frame_counts(const std::filesystem::path& output, const std::vector<CroppedVideo>& videos,
                        const std::vector<std::string>& removed = {});

// The file `crop` writes beside kFrameCountFile: per video, how its current crops were made.
inline constexpr char kCropRecordFile[] = "crop.json";

// Writes `<output>/crop.json` (kCropRecordFile): per video the source file, detector, size,
// margin, JPEG quality and frame counts of the crop run its folder holds (and `faces` when
// several people were followed), merged with the entries of other videos already there; those
// named in `removed` are taken out.
void write_crop_record(const std::filesystem::path& output, const std::vector<CroppedVideo>& videos,
                       const CropOptions& options, const std::vector<std::string>& removed = {});

// The crop folders an earlier `crop` of the same file `video` left under names this run did not
// write (`<video>` after `--faces 2` wrote `<video>_left` and `<video>_right`, or the other way
// round): removed with their boxes CSVs where crop.json records them as cut from this very file
// (a folder of another video that merely shares the name stays). Returns the names removed, for
// write_frame_counts and write_crop_record.
std::vector<std::string> remove_replaced_crops(const std::filesystem::path& output, const std::filesystem::path& video,
                                               const std::vector<CroppedVideo>& written);

}  // namespace abaw
