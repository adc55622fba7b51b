#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "abaw/bench.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {

Action add_bench_command(CLI::App& app, BenchOptions& options) {
  CLI::App* bench = app.add_subcommand(
      "bench",
      "Time one pipeline stage alone with run's code and threads: crop decoding + preprocessing, or the "
      "encoder on ready tensors (scripts/benchmark.py compares them with a whole run)");
  bench->add_option("--model-set", options.model_set, "Model-set folder")->required()->check(CLI::ExistingDirectory);
  add_enum_option(*bench, "--stage", options.stage, kBenchStageNames,
                  "decode: decode + preprocess the crops of --crops, no model; encode: the encoder alone on "
                  "random tensors of the manifest's input shape (after one untimed warm-up batch)")
      ->required()
      ->default_str("");
  bench->add_option("--crops", options.crops, "decode: folder of video folders of crops")
      ->check(CLI::ExistingDirectory);
  bench
      ->add_option("--frames", options.frames,
                   "decode: at most this many crops (0 = all); encode: images to encode (0 = 8 batches)")
      ->check(CLI::Range(0L, 1000000000L))
      ->capture_default_str();
  auto store_compute_options = add_compute_options(*bench, options.compute);
  auto json = std::make_shared<bool>(false);
  bench->add_flag("--json", *json, "Print the measurement as one JSON object");

  bench->callback([store_compute_options, &options] {
    store_compute_options();
    if (options.stage == BenchStage::kDecode && options.crops.empty()) {
      throw CLI::ValidationError("--crops", "--stage decode needs --crops");
    }
  });

  return [json, &options]() -> int {
    const BenchResult result = run_bench(options);
    if (*json) {
      std::cout << result.to_json().dump() << "\n";
    } else {
      std::printf(
          "%s: %ld images in %.3f s, %.1f images/s (batch %d, %d threads, %d decode threads, %s, %s, "
          "normalising on the %s, %s); peak RSS %.0f MiB\n",
          name_of(kBenchStageNames, result.stage), result.frames, result.seconds, result.frames_per_second(),
          result.batch_size, result.threads, result.decode_threads, result.device.c_str(), result.precision.c_str(),
          result.preprocess_on.c_str(), result.memory_format.c_str(), result.peak_rss_mb);
    }
    return 0;
  };
}

}  // namespace abaw::cli
