// The subcommands of abaw-infer. Each registers its options on a CLI11 subcommand (declared once,
// with help and validation) and returns the action that runs it; main() only dispatches.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "abaw/annotations.hpp"
#include "abaw/bench.hpp"
#include "abaw/pipeline.hpp"
#include "abaw/tasks.hpp"

namespace abaw::cli {

// Runs a parsed subcommand and returns the process exit code.
using Action = std::function<int()>;

// `run`: options are parsed into `options` (exposed so parser tests can inspect them).
Action add_run_command(CLI::App& app, RunOptions& options);

// `info`: describe a model set and prove it runs.
Action add_info_command(CLI::App& app);

// `eval`: score predictions against annotations (ABAW metrics).
Action add_eval_command(CLI::App& app);

// `check`: validate a submission against its frame list.
Action add_check_command(CLI::App& app);

// `tune`: tune thresholds / filter widths on validation raw scores.
Action add_tune_command(CLI::App& app);

// `crop`: videos -> Aff-Wild2 crop folders.
Action add_crop_command(CLI::App& app);

// `merge`: shards and ensembles -> submissions.
Action add_merge_command(CLI::App& app);

// `bench`: one pipeline stage timed alone (exposed like `run` for parser tests).
Action add_bench_command(CLI::App& app, BenchOptions& options);

// Declares, once, the options `run` and `bench` share: --device, --batch-size, --pack-batches,
// --threads, --decode-threads, --max-image-pixels, --precision, --preprocess-on and --manifest-patch. `Options` is RunOptions or
// BenchOptions. The returned function stores the parsed precision and placement in `options`;
// the command's callback calls it.
template <class Options>
std::function<void()> add_compute_options(CLI::App& command, Options& options) {
  command.add_option("--device", options.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  command.add_option("--batch-size", options.batch_size, "Crops per encoder batch")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  command.add_flag("--pack-batches", options.pack_batches,
                   "Fill every encoder batch, continuing into the next video: faster when videos are short, "
                   "but a frame's features may then differ in the last bits between runs over other video "
                   "sets (shards, --resume). Default: each video's batches start at its first crop");
  command.add_option("--threads", options.threads, "Intra-op threads (0 = one per core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  command
      .add_option("--decode-threads", options.decode_threads,
                  "Threads decoding and preprocessing crops ahead of the model (0 = half the cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  command
      .add_option("--max-image-pixels", options.max_image_pixels,
                  "Largest crop decoded, in pixels (width x height, read from the file's header); a larger one "
                  "is treated as unreadable without being decoded")
      ->check(CLI::Range(1LL, 1LL << 40))
      ->capture_default_str();
  auto precision = std::make_shared<std::string>();
  command
      .add_option("--precision", *precision,
                  "Encoder precision: fp32, fp16 (CUDA only) or bf16; overrides the manifest's encoder.precision")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  auto preprocess_on = std::make_shared<std::string>("auto");
  command
      .add_option("--preprocess-on", *preprocess_on,
                  "Where pixels become normalised float tensors: host (decode threads), device (the encoder's "
                  "device, from 8-bit pixels: a quarter of the bytes to copy to a GPU) or auto (device on CUDA, "
                  "else host). Decoding and resizing are always on the host")
      ->check(CLI::IsMember({"auto", "host", "device"}))
      ->capture_default_str();
  command
      .add_option("--manifest-patch", options.manifest_patch,
                  "JSON merged into the manifest first (RFC 7396): the fragment `tune` writes, or e.g. "
                  "{\"encoder\": {\"memory_format\": \"channels_last\"}}")
      ->check(CLI::ExistingFile);
  return [precision, preprocess_on, &options] {
    if (!precision->empty()) options.precision = parse_precision(*precision);
    options.preprocess_on = *parse_preprocess_place(*preprocess_on);
  };
}

// Parses "TASK=VALUE" (TASK one of va, expr, au, any case). Throws CLI::ValidationError.
std::pair<Task, std::string> parse_task_assignment(const std::string& text, const std::string& option);

// The rows a command predicts or merges: --tasks, --frame-list TASK=FILE and --annotations
// [TASK=]DIR (the task read from the files' header when not given).
struct RowsArguments {
  std::vector<std::string> tasks, frame_lists, annotations;
};

// Declares, once, the rows options `run` and `merge` share, into `arguments`; `tasks_help` and
// `frame_list_help` say what they mean for the command.
void add_rows_options(CLI::App& command, RowsArguments& arguments, const std::string& tasks_help,
                      const std::string& frame_list_help);

// Stores parsed rows options into `options` (RunOptions or MergeOptions). A second frame list or
// annotation folder for one task is a usage error (CLI::ValidationError), never silently the last.
template <class Options>
void store_rows_options(const RowsArguments& arguments, Options& options) {
  for (const auto& name : arguments.tasks) options.tasks.push_back(*parse_task(name));
  for (const auto& text : arguments.frame_lists) {
    auto [task, file] = parse_task_assignment(text, "--frame-list");
    if (options.frame_lists.count(task)) {
      throw CLI::ValidationError("--frame-list", std::string("two frame lists for ") + task_name(task));
    }
    options.frame_lists[task] = file;
  }
  for (const auto& text : arguments.annotations) {
    const size_t equals = text.find('=');
    const bool has_task = equals != std::string::npos && parse_task(text.substr(0, equals));
    const auto [task, folder] =
        has_task ? parse_task_assignment(text, "--annotations") : std::make_pair(annotation_folder_task(text), text);
    if (options.annotations.count(task)) {
      throw CLI::ValidationError("--annotations", std::string("two annotation folders for ") + task_name(task));
    }
    options.annotations[task] = folder;
  }
}

}  // namespace abaw::cli
