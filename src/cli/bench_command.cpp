#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "abaw/bench.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {

Action add_bench_command(CLI::App& app, BenchOptions& options) {
  CLI::App* bench = app.add_subcommand(
      "bench", "Time one pipeline stage alone with run's code and threads: crop decoding + preprocessing, or the "
               "encoder on ready tensors (scripts/benchmark.py compares them with a whole run)");
  bench->add_option("--model-set", options.model_set, "Model-set folder")->required()->check(CLI::ExistingDirectory);
  auto stage = std::make_shared<std::string>();
  bench->add_option("--stage", *stage,
                    "decode: decode + preprocess the crops of --crops, no model; encode: the encoder alone on "
                    "random tensors of the manifest's input shape (after one untimed warm-up batch)")
      ->required()
      ->check(CLI::IsMember({"decode", "encode"}));
  bench->add_option("--crops", options.crops, "decode: folder of video folders of crops")
      ->check(CLI::ExistingDirectory);
  bench->add_option("--frames", options.frames,
                    "decode: at most this many crops (0 = all); encode: images to encode (0 = 8 batches)")
      ->check(CLI::Range(0L, 1000000000L))
      ->capture_default_str();
  bench->add_option("--batch-size", options.batch_size, "Images per batch, as in run")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  bench->add_option("--threads", options.threads, "Intra-op threads (0 = one per core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  bench->add_option("--decode-threads", options.decode_threads, "Decode threads (0 = half the cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  bench->add_option("--device", options.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  auto preprocess_on = std::make_shared<std::string>("auto");
  bench->add_option("--preprocess-on", *preprocess_on,
                 "Where pixels become normalised float tensors: host (decode threads), device (the encoder's "
                 "device, from 8-bit pixels: a quarter of the bytes to copy to a GPU) or auto (device on CUDA, "
                 "else host). Decoding and resizing are always on the host")
      ->check(CLI::IsMember({"auto", "host", "device"}))
      ->capture_default_str();
  auto precision = std::make_shared<std::string>();
  bench->add_option("--precision", *precision, "Encoder precision: fp32, fp16 (CUDA only) or bf16")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  bench->add_option("--manifest-patch", options.manifest_patch,
                    "JSON merged into the manifest first (RFC 7396), e.g. {\"encoder\": {\"memory_format\": "
                    "\"channels_last\"}} to compare layouts")
      ->check(CLI::ExistingFile);
  auto json = std::make_shared<bool>(false);
  bench->add_flag("--json", *json, "Print the measurement as one JSON object");

  bench->callback([stage, precision, preprocess_on, &options] {
    options.stage = *stage == "decode" ? BenchStage::kDecode : BenchStage::kEncode;
    if (!precision->empty()) options.precision = parse_precision(*precision);
    options.preprocess_on = *parse_preprocess_place(*preprocess_on);
    if (options.stage == BenchStage::kDecode && options.crops.empty()) {
      throw CLI::ValidationError("--crops", "--stage decode needs --crops");
    }
  });

  return [json, &options]() -> int {
    const BenchResult result = run_bench(options);
    if (*json) {
      std::cout << result.to_json().dump() << "\n";
    } else {
      std::printf("%s: %ld images in %.3f s, %.1f images/s (batch %d, %d threads, %d decode threads, %s, %s, "
                  "normalising on the %s, %s); peak RSS %.0f MiB\n",
                  bench_stage_name(result.stage), result.frames, result.seconds, result.frames_per_second(),
                  result.batch_size, result.threads, result.decode_threads, result.device.c_str(),
                  result.precision.c_str(), result.preprocess_on.c_str(), result.memory_format.c_str(), result.peak_rss_mb);
    }
    return 0;
  };
}

}  // namespace abaw::cli
