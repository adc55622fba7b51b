// How `run` and `bench` compute: device, batches, threads, precision and where preprocessing
// runs. One struct for both commands, filled by one CLI helper (add_compute_options), so that
// `bench` measures exactly what `run` would do with the same flags.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "abaw/manifest.hpp"
#include "abaw/preprocess_spec.hpp"

namespace abaw {

struct ComputeOptions {
  std::string device = "auto";  // "auto", "cpu", "cuda" or "cuda:N" (see resolve_device)
  int batch_size = 32;          // crops per encoder batch
  bool pack_batches = false;    // batches continue into the next video (see plan_encoder_batches)
  int threads = 0;              // intra-op threads; 0 = one per core
  int decode_threads = 0;       // JPEG decode + preprocessing threads; 0 = half the cores (at least 1)
  long long max_image_pixels = kDefaultMaxImagePixels;     // see decode_crop
  std::optional<Precision> precision;                      // overrides the manifest's encoder precision
  PreprocessPlace preprocess_on = PreprocessPlace::kAuto;  // where pixels become normalised floats
  std::optional<std::filesystem::path> manifest_patch;     // merged into the manifest (e.g. from `tune`)
};

}  // namespace abaw
