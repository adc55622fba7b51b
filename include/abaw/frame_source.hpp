// Where `run` gets its frames: the seam between the pipeline and its input. The pipeline plans,
// encodes, predicts and writes without knowing whether frames are crop files (CropFolderSource,
// the Aff-Wild2 layout) or, next, frames decoded from videos.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "abaw/preprocess.hpp"
#include "abaw/video_index.hpp"

namespace abaw {

// One image of an encoder batch: (video, crop), indices into VideoIndex::videos and its crops.
using CropItem = std::pair<size_t, size_t>;

class FrameSource {
 public:
  virtual ~FrameSource() = default;

  // The videos, their frame counts and crops, and each task's rows (`rows.tasks` are the tasks
  // to index; `videos` a subset, empty for all). Throws Error(kInput) as build_video_index does.
  virtual VideoIndex index(const RowsOptions& rows, const std::vector<std::string>& videos) const = 0;

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
};

// Crop files: `<folder>/<video>/00001.jpg ...`, decoded and preprocessed with decode_batch.
class CropFolderSource : public FrameSource {
 public:
  // `place` must be resolved (kHost or kDevice); `pinned` pins batches for copies to a GPU.
  CropFolderSource(std::filesystem::path folder, PreprocessSpec spec, PreprocessPlace place, bool pinned,
                   long long max_image_pixels);

  VideoIndex index(const RowsOptions& rows, const std::vector<std::string>& videos) const override;
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

}  // namespace abaw
