#include "abaw/bench.hpp"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/model_set.hpp"
#include "abaw/runtime.hpp"
#include "abaw/preprocess.hpp"
#include "abaw/video_index.hpp"
#include "abaw/windows.hpp"
#include "ordered_queue.hpp"
#include "progress.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

// Batches as `run` cuts them (plan_encoder_batches), over the first `limit` crops (0 = all).
std::vector<std::vector<fs::path>> crop_batches(const fs::path& crops, long limit, size_t batch_size, bool pack) {
  std::error_code ec;
  if (!fs::is_directory(crops, ec)) {
    throw Error(ErrorKind::kUsage, "crops folder does not exist or is not a folder", crops.string());
  }
  std::vector<fs::path> folders;
  for (const auto& entry : list_folder(crops, "crops folder")) {
    std::error_code type_ec;
    if (entry.is_directory(type_ec)) folders.push_back(entry.path());
  }
  std::sort(folders.begin(), folders.end());
  std::vector<std::vector<CropFile>> videos;
  std::vector<size_t> counts;
  long taken = 0;
  for (const auto& folder : folders) {
    if (limit > 0 && taken == limit) break;
    videos.push_back(scan_crop_folder(folder));
    if (limit > 0 && taken + static_cast<long>(videos.back().size()) > limit) videos.back().resize(limit - taken);
    counts.push_back(videos.back().size());
    taken += static_cast<long>(counts.back());
  }
  if (taken == 0) throw Error(ErrorKind::kInput, "no crops in any video folder", crops.string());
  std::vector<std::vector<fs::path>> batches;
  for (const auto& plan : plan_encoder_batches(counts, batch_size, pack)) {
    batches.emplace_back();
    for (const CropSpan& span : plan) {
      for (size_t crop = span.begin; crop < span.end; ++crop) batches.back().push_back(videos[span.video][crop].path);
    }
  }
  return batches;
}

void bench_decode(const BenchOptions& options, const Manifest& manifest, torch::Device device, PreprocessPlace place,
                  BenchResult& result) {
  const auto batches = crop_batches(options.crops, options.frames, static_cast<size_t>(options.compute.batch_size),
                                    options.compute.pack_batches);
  long total = 0;
  for (const auto& batch : batches) total += static_cast<long>(batch.size());
  Progress progress(total, "decoded", "crops");
  const auto start = Clock::now();
  OrderedQueue<DecodedImages> queue(batches.size(), result.decode_threads,
                                    static_cast<size_t>(result.decode_threads) + 1, [&](size_t i) {
                                      return decode_batch(batches[i], manifest.encoder.preprocess, place,
                                                          device.is_cuda(), options.compute.max_image_pixels);
                                    });
  while (auto decoded = queue.next()) {
    const long count = static_cast<long>(decoded->errors.size());
    progress.advance(count);
    result.frames += count;
    result.unreadable += std::count_if(decoded->errors.begin(), decoded->errors.end(),
                                       [](const std::string& error) { return !error.empty(); });
  }
  result.seconds = seconds_since(start);
  if (result.unreadable > 0) {
    spdlog::warn("{} of {} crops could not be decoded (`run` names each)", result.unreadable, result.frames);
  }
}

void bench_encode(const BenchOptions& options, const Manifest& manifest, torch::Device device, PreprocessPlace place,
                  BenchResult& result) {
  ModelSet models(manifest, device);
  const PreprocessSpec& spec = manifest.encoder.preprocess;
  const int64_t batch = options.compute.batch_size, side = spec.output_side();
  const long frames = options.frames > 0 ? options.frames : 8 * batch;
  torch::manual_seed(0);
  // What the decode threads hand over: float CHW tensors, or 8-bit pixels encode() normalises.
  torch::Tensor images = place == PreprocessPlace::kDevice
                             ? torch::randint(0, 256, {batch, side, side, spec.channels()}, torch::kUInt8)
                             : torch::randn({batch, spec.channels(), side, side});
  if (device.is_cuda()) images = images.pin_memory();
  models.encode(images);  // warm-up: TorchScript's first call profiles and optimises
  Progress progress(frames, "encoded", "images");
  const auto start = Clock::now();
  for (long done = 0; done < frames; done += batch) {
    const int64_t count = std::min<int64_t>(batch, frames - done);
    models.encode(count == batch ? images : images.narrow(0, 0, count));
    progress.advance(count);
  }
  result.seconds = seconds_since(start);
  result.frames = frames;
}

}  // namespace

nlohmann::json BenchResult::to_json() const {
  return {{"stage", name_of(kBenchStageNames, stage)},
          {"frames", frames},
          {"unreadable", unreadable},
          {"seconds", seconds},
          {"frames_per_second", frames_per_second()},
          {"batch_size", batch_size},
          {"threads", threads},
          {"decode_threads", decode_threads},
          {"device", device},
          {"precision", precision},
          {"preprocess_on", preprocess_on},
          {"memory_format", memory_format},
          {"peak_rss_mb", peak_rss_mb}};
}

BenchResult run_bench(const BenchOptions& options) {
  c10::InferenceMode inference_mode;
  if (options.compute.batch_size < 1) throw Error(ErrorKind::kUsage, "--batch-size must be at least 1");
  if (options.frames < 0) throw Error(ErrorKind::kUsage, "--frames must not be negative");
  Manifest manifest = load_manifest(options.model_set, options.compute.manifest_patch);
  if (options.compute.precision) manifest.encoder.precision = *options.compute.precision;
  BenchResult result;
  result.stage = options.stage;
  result.batch_size = options.compute.batch_size;
  result.decode_threads = configure_runtime(options.compute.threads, options.compute.decode_threads);
  result.threads = at::get_num_threads();
  const torch::Device device = resolve_device(options.compute.device);
  result.device = device.str();
  result.precision = name_of(kPrecisionNames, manifest.encoder.precision);
  result.memory_format = name_of(kMemoryFormatNames, manifest.encoder.memory_format);
  const PreprocessPlace place =
      resolve_preprocess_place(options.compute.preprocess_on, device, manifest.encoder.preprocess);
  result.preprocess_on = name_of(kPreprocessPlaceNames, place);
  warn_about_slow_blas();
  if (options.stage == BenchStage::kDecode) {
    bench_decode(options, manifest, device, place, result);
  } else {
    bench_encode(options, manifest, device, place, result);
  }
  result.peak_rss_mb = peak_rss_megabytes();
  return result;
}

}  // namespace abaw
