// Stage benchmarks (`abaw-infer bench`): crop decoding + preprocessing alone, and the encoder
// alone on ready tensors, with the code, batches and thread policy of `run`. Comparing them with a
// whole run (scripts/benchmark.py) shows what the pipeline adds to the model's own time.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "abaw/compute_options.hpp"

namespace abaw {

enum class BenchStage {
  kDecode,  // JPEG decode + the manifest's preprocessing, on the decode threads; no model runs
  kEncode,  // the encoder on pre-made random input tensors of the manifest's shape
};

// The names `bench --stage` takes.
inline constexpr EnumName<BenchStage> kBenchStageNames[] = {{"decode", BenchStage::kDecode},
                                                            {"encode", BenchStage::kEncode}};

// What `abaw-infer bench` measures, and with which settings.
struct BenchOptions {
  std::filesystem::path model_set;
  BenchStage stage = BenchStage::kDecode;
  std::filesystem::path crops;  // kDecode: the crops of every video folder in here
  long frames = 0;              // kDecode: at most this many crops (0 = all); kEncode: images (0 = 8 batches)
  // As in `run`. kDecode with preprocess_on kDevice stops at 8-bit pixels; kEncode with kDevice
  // includes normalise_pixels().
  ComputeOptions compute;
};

// One measurement. Model loading and the encoder's warm-up batch are not in `seconds`.
struct BenchResult {
  BenchStage stage = BenchStage::kDecode;
  long frames = 0;      // images decoded or encoded
  long unreadable = 0;  // kDecode: crops that could not be decoded (counted in frames)
  double seconds = 0;
  int batch_size = 0;
  int threads = 0;
  int decode_threads = 0;
  std::string device;
  std::string precision;
  std::string preprocess_on;  // resolved: "host" or "device"
  std::string memory_format;  // the encoder's input layout
  double peak_rss_mb = 0;     // the process's peak, model and buffers included

  double frames_per_second() const { return seconds > 0 ? frames / seconds : 0.0; }
  // Every field above plus frames_per_second, for `bench --json`.
  nlohmann::json to_json() const;
};

// Runs one stage. Throws Error as `run` does: kUsage for bad options, kModel for the model set,
// kInput when the crops folder holds no crops.
BenchResult run_bench(const BenchOptions& options);

}  // namespace abaw
