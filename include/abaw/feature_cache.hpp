// `run --features DIR`: the encoder's output per video, kept on disk so that re-running with
// another head or other post-processing skips the encoder. Entries are keyed by the encoder
// (file contents + preprocessing + feature_dim) and by the video's crop files (frame numbers,
// sizes, modification times); a stale or corrupt entry is detected, reported and recomputed.
//
// File `<DIR>/<video>.features`, little-endian:
//   magic "ABAWFEAT" | u32 version (1) | u64 encoder key | u64 crops key | u32 feature_dim |
//   u64 crop count n | n x (i64 frame, u8 readable) | n x feature_dim f32 | u64 FNV-1a of all
//   preceding bytes
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "abaw/manifest.hpp"
#include "abaw/video_index.hpp"

namespace abaw {

// 64-bit FNV-1a, continued from `seed`.
uint64_t fnv1a(const void* data, size_t size, uint64_t seed = 0xcbf29ce484222325ULL);

// FNV-1a of a file's bytes, continued from `seed`. Throws Error(kModel) when it cannot be read.
uint64_t hash_file(const std::filesystem::path& file, uint64_t seed = 0xcbf29ce484222325ULL);

// A key of a video's crop files: frame numbers, sizes and modification times.
uint64_t crop_files_key(const VideoEntry& video);

// Features of one video as the pipeline keeps them: one row per crop, in crop order.
struct CachedFeatures {
  std::vector<float> rows;        // crops x feature_dim
  std::vector<uint8_t> readable;  // per crop; 0: the crop could not be decoded
};

class FeatureCache {
 public:
  // Creates `folder` if needed. The encoder key hashes the encoder file's bytes (given as
  // `encoder_file_hash` = hash_file(encoder file): `run` hashes it once for this and --resume),
  // the preprocessing, precision, memory format and feature_dim. Throws Error(kOutput) when the
  // folder cannot be created.
  FeatureCache(std::filesystem::path folder, const Manifest& manifest, uint64_t encoder_file_hash);

  // The entry for `video` when present, complete and made by this encoder from these crop
  // files; otherwise nothing (a stale or corrupt entry is logged with the reason).
  std::optional<CachedFeatures> load(const VideoEntry& video) const;

  // Writes the entry for `video` atomically.
  void store(const VideoEntry& video, const CachedFeatures& features) const;

  const std::filesystem::path& folder() const { return folder_; }
  uint64_t encoder_key() const { return encoder_key_; }

 private:
  std::filesystem::path file_for(const VideoEntry& video) const;

  std::filesystem::path folder_;
  uint64_t encoder_key_ = 0;
  int feature_dim_ = 0;
};

}  // namespace abaw
