// Where `run` gets its frames: the seam between the pipeline and its input. The pipeline plans,
// encodes, predicts and writes without knowing whether frames are crop files (CropFolderSource,
// the Aff-Wild2 layout) or faces found in decoded video frames (VideoFileSource, `run --videos`).
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "abaw/face_crop.hpp"
#include "abaw/preprocess.hpp"
#include "abaw/video_index.hpp"

namespace abaw {

// One image of an encoder batch: (video, crop), indices into VideoIndex::videos and its crops.
using CropItem = std::pair<size_t, size_t>;

// One encoder batch of a streamed video (FrameSource::stream): its next crops, preprocessed.
struct StreamedBatch {
  std::vector<CropFile> crops;  // frame numbers and where each crop is (a saved crop, else the video)
  DecodedImages images;         // one per crop
  long frames_expected = 0;     // the container's frame count (0: unknown), for progress
  double seconds = 0;           // streaming-thread seconds: waiting for decoded frames, faces, crops, pixels
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;

  // The videos, their frame counts and crops, and each task's rows (`rows.tasks` are the tasks
  // to index; `videos` a subset, empty for all), of `shard`'s part (keep_shard, unless the source
  // says otherwise). Throws Error(kInput) as build_video_index does.
  virtual VideoIndex index(const RowsOptions& rows, const std::vector<std::string>& videos, Shard shard) const = 0;

  // Decodes and preprocesses `items` of `index` as one encoder batch (see decode_batch). A frame
  // that cannot be read gets its error and never throws. Called from several decode threads at
  // once: implementations only read.
  virtual DecodedImages decode(const VideoIndex& index, const std::vector<CropItem>& items) const = 0;

  // A key of one video's input (which frames, and their files as far as cheaply known): part of
  // the --resume and --features keys, so changed input is never taken for finished work.
  virtual uint64_t input_key(const VideoEntry& video) const = 0;

  // Where a video's frames are, for messages.
  virtual std::filesystem::path location(const VideoEntry& video) const = 0;

  // What run.json says about the input (its "crops" block).
  virtual nlohmann::json describe(const VideoIndex& index) const = 0;

  // Inputs left out of the index that count as failed videos: (name, why).
  virtual std::vector<std::pair<std::string, std::string>> failed_inputs() const { return {}; }

  // True when frames come from stream() instead of decode(): a video's crops, and its frame count
  // where no frame list or annotations give it (task_frames 0 in the index), are known only once
  // it has been decoded.
  virtual bool streams() const { return false; }

  // Streams one video: calls `on_batch` on the calling thread with each next `batch_size` crops
  // (the last batch may be smaller), while the next ones are made on a thread of its own; returns
  // the video's counts and seconds. Throws Error when the video fails; rethrows what `on_batch`
  // throws. Only for sources that stream().
  virtual CroppedVideo stream(const VideoEntry& video, size_t batch_size,
                              const std::function<void(StreamedBatch&)>& on_batch) const;
};

// Crop files: `<folder>/<video>/00001.jpg ...`, decoded and preprocessed with decode_batch.
class CropFolderSource : public FrameSource {
 public:
  // `place` must be resolved (kHost or kDevice); `pinned` pins batches for copies to a GPU.
  CropFolderSource(std::filesystem::path folder, PreprocessSpec spec, PreprocessPlace place, bool pinned,
                   long long max_image_pixels);

  VideoIndex index(const RowsOptions& rows, const std::vector<std::string>& videos, Shard shard) const override;
  DecodedImages decode(const VideoIndex& index, const std::vector<CropItem>& items) const override;
  // crop_files_key: frame numbers, sizes and modification times.
  uint64_t input_key(const VideoEntry& video) const override;
  std::filesystem::path location(const VideoEntry& video) const override;
  // {"path": the folder, "crop_record": what `crop` recorded about these videos (crop.json:
  // detector, style, template, size, margin), or null for crops made by other tools}.
  nlohmann::json describe(const VideoIndex& index) const override;

 private:
  std::filesystem::path folder_;
  PreprocessSpec spec_;
  PreprocessPlace place_;
  bool pinned_;
  long long max_image_pixels_;
};

// Video files (`run --videos`): frames decoded, faces found and cut as `crop` does (VideoFaces,
// the same detector and options), each crop JPEG-encoded and decoded again in memory exactly as
// `crop` writes and `run --crops` reads it, so both ways give the same predictions, then
// preprocessed; nothing goes to disk unless `save_crops` is set. Memory stays bounded: at most two
// batches are made ahead of the encoder.
//
// With several people (the finder's max_people > 1) a video is one entry per person, named as
// `crop --faces N` names their folders (`<video>_left`, ...), which are known only once the whole
// video has been seen. So index() first runs the people pass (find_people) over every video file
// the rows may need, keeping each person's boxes and points; stream() then decodes the file again
// for each person and cuts that person's crops (cut_face), the crops `crop --faces N` writes.
// A shard then holds whole video files (all their people), and only passes over its own; what the
// pass found in a file can be kept (PeoplePassStore), so that a resumed run skips it.
class VideoFileSource : public FrameSource {
 public:
  // Where the people pass keeps what it found in each video file: `state/<file>.people.json`
  // under --output (OutputLayout::people_pass), and `<file>.people.json` in the feature cache,
  // with a key of the file and the face pipeline. A file whose kept pass has its key is not
  // passed again: from the feature cache always, from --output with --resume.
  struct PeoplePassStore {
    std::filesystem::path output;                   // --output
    bool reuse = false;                             // --resume
    std::optional<std::filesystem::path> features;  // --features
  };

  // `inputs`: video files and folders (list_video_files). `finder` must outlive the source.
  // `save_crops`: also write the crops, boxes, frame_counts.csv and crop.json there, as `crop`
  // does. `place` must be resolved; `pinned` pins batches for copies to a GPU. Throws as
  // list_video_files; a file whose stem is not a valid video name is logged and rejected().
  // `stop_requested`, when given, is asked during the people pass (several people), which runs
  // before anything is encoded: true ends it early. `people_store`: keep (and reuse) the people
  // pass there; none: neither.
  VideoFileSource(const std::vector<std::filesystem::path>& inputs, FaceFinder& finder,
                  std::optional<std::filesystem::path> save_crops, PreprocessSpec spec, PreprocessPlace place,
                  bool pinned, std::function<bool()> stop_requested = {},
                  std::optional<PeoplePassStore> people_store = std::nullopt);

  // Videos with a frame list or annotations get those rows (a listed video without a file fails
  // alone); a task without them lists every video file, its frame count 0 until decoded. With
  // several people: every person found, or the listed ones (a listed person not found fails
  // alone, as does a video whose people pass fails); a shard takes whole files, by the sorted
  // list of the files the rows need (a listed name without a file counts as a file of its own).
  VideoIndex index(const RowsOptions& rows, const std::vector<std::string>& videos, Shard shard) const override;
  // Never called: the frames stream. Throws Error(kUsage).
  DecodedImages decode(const VideoIndex& index, const std::vector<CropItem>& items) const override;
  // The file's size, modification time and bytes of its first and last MiB, the face pipeline
  // (FaceFinder::description) and the --save-crops folder.
  uint64_t input_key(const VideoEntry& video) const override;
  std::filesystem::path location(const VideoEntry& video) const override;
  // {"videos": the inputs, "faces": the face pipeline, "saved_crops": the folder or null}.
  nlohmann::json describe(const VideoIndex& index) const override;
  bool streams() const override { return true; }
  // Video files whose names cannot be video names: (file name, why); each fails alone, as in `crop`.
  std::vector<std::pair<std::string, std::string>> failed_inputs() const override { return rejected_; }
  CroppedVideo stream(const VideoEntry& video, size_t batch_size,
                      const std::function<void(StreamedBatch&)>& on_batch) const override;

 private:
  // One person's entry: the file, where the people pass found them, and the pass's counts.
  struct Person {
    std::filesystem::path file;
    PersonFaces faces;
    CroppedVideo counts;    // the video's, from the people pass
    bool first_in_file{};  // carries the people pass's seconds into the run's stage times
  };
  VideoIndex index_people(const RowsOptions& rows, const std::vector<std::string>& videos, Shard shard) const;
  // The people pass over `file` (named `name`): kept from an earlier run where people_store_ allows
  // and its key matches, else find_people (then kept). Empty when stopped.
  std::vector<PersonFaces> pass_people(const std::string& name, const std::filesystem::path& file,
                                       CroppedVideo& counts) const;
  void write_people_pass(const std::filesystem::path& file, const std::string& key, const CroppedVideo& counts,
                         const std::vector<PersonFaces>& people) const;
  // The key of `file`'s bytes: size, modification time, and its first and last MiB.
  static uint64_t file_key(const std::filesystem::path& file, uint64_t seed);
  CroppedVideo stream_person(const VideoEntry& video, size_t batch_size,
                             const std::function<void(StreamedBatch&)>& on_batch) const;
  std::map<std::string, std::filesystem::path> files_;  // by video name
  mutable std::map<std::string, Person> people_;         // by person name; filled by index()
  mutable std::vector<std::pair<std::string, std::string>> rejected_;
  std::vector<std::filesystem::path> inputs_;
  FaceFinder& finder_;
  std::optional<std::filesystem::path> save_crops_;
  PreprocessSpec spec_;
  PreprocessPlace place_;
  bool pinned_;
  std::function<bool()> stop_requested_;
  std::optional<PeoplePassStore> people_store_;
};

}  // namespace abaw
