// `run --features DIR`: the encoder's output per video, kept on disk so that re-running with
// another head or other post-processing skips the encoder. Entries are keyed by the encoder
// (file contents + preprocessing + feature_dim) and by the video's input (FrameSource::input_key:
// for crop folders the files' frame numbers, sizes, modification times); a stale or corrupt entry
// is detected, reported and recomputed.
//
// File `<DIR>/<video>.features`, little-endian:
//   magic "ABAWFEAT" | u32 version (2) | u64 encoder key | u64 input key | u32 feature_dim |
//   i64 the video's frame count | u64 crop count n | n x (i64 frame, u8 readable) |
//   n x feature_dim f32 | u64 FNV-1a of all preceding bytes
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "abaw/feature_rows.hpp"
#include "abaw/manifest.hpp"
#include "abaw/video_index.hpp"

namespace abaw {

// 64-bit FNV-1a, continued from `seed`.
uint64_t fnv1a(const void* data, size_t size, uint64_t seed = 0xcbf29ce484222325ULL);

// FNV-1a of a file's bytes, continued from `seed`. Throws Error(kModel) when it cannot be read.
uint64_t hash_file(const std::filesystem::path& file, uint64_t seed = 0xcbf29ce484222325ULL);

// A key of a video's crop files: frame numbers, sizes and modification times.
uint64_t crop_files_key(const VideoEntry& video);

// The key of what the encoder computes: `encoder_file_hash` (hash_file of the encoder file, with
// the crop-decoding policy mixed in by the caller) continued over every manifest setting that
// changes the encoder's input or arithmetic: preprocessing, precision, memory format and
// feature_dim. Feature-cache entries are keyed by it, and the --resume key starts from it.
uint64_t encoder_key(const Manifest& manifest, uint64_t encoder_file_hash);

// Features of one video as the pipeline keeps them: one row per crop, in crop order.
struct CachedFeatures {
  FeatureRows rows;               // one per crop
  std::vector<uint8_t> readable;  // per crop; 0: the crop could not be decoded
  long frames = 0;                // the video's frame count when stored (VideoEntry::frames)
  std::vector<long> crop_frames;  // per crop: its frame number (filled by load)
};

class FeatureCache {
 public:
  // Creates `folder` if needed; entries are valid for `encoder_key` (see encoder_key()) and
  // `feature_dim`. Throws Error(kOutput) when the folder cannot be created.
  FeatureCache(std::filesystem::path folder, uint64_t encoder_key, int feature_dim);

  // The entry for `video` when present, complete and made by this encoder from input with this
  // `input_key`; otherwise nothing (a stale or corrupt entry is logged with the reason). Its rows
  // go into `rows` (empty, of feature_dim floats; where they spill is theirs to say), read a
  // piece at a time, so that a long video's entry is never whole in memory. The stored frame
  // numbers must be video.crops' unless `crops_unknown` (a streamed video: its crops are known
  // only from the entry).
  std::optional<CachedFeatures> load(const VideoEntry& video, uint64_t input_key, FeatureRows rows,
                                     bool crops_unknown = false) const;

  // Writes the entry for `video` (its frames and crops; per crop its row and whether it was
  // readable), made from input with `input_key`, atomically, a piece of the rows at a time.
  void store(const VideoEntry& video, uint64_t input_key, const FeatureRows& rows,
             const std::vector<uint8_t>& readable) const;

  const std::filesystem::path& folder() const { return folder_; }
  uint64_t encoder_key() const { return encoder_key_; }

 private:
  std::filesystem::path file_for(const VideoEntry& video) const;

  std::filesystem::path folder_;
  uint64_t encoder_key_ = 0;
  int feature_dim_ = 0;
};

}  // namespace abaw
