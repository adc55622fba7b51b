// The option groups several subcommands share, each declared once: the rows (`run`, `merge`) and
// the compute options (`run`, `bench`).
#include "cli/commands.hpp"

namespace abaw::cli {

std::pair<Task, std::string> parse_task_assignment(const std::string& text, const std::string& option) {
  const size_t equals = text.find('=');
  auto task = equals == std::string::npos ? std::nullopt : parse_task(text.substr(0, equals));
  if (!task || equals + 1 >= text.size()) {
    throw CLI::ValidationError(option, "expected TASK=PATH with TASK one of va, expr, au, got '" + text + "'");
  }
  return {*task, text.substr(equals + 1)};
}

CLI::Validator task_name_check() {
  std::vector<std::string> keys;
  for (Task task : all_tasks()) keys.emplace_back(task_key(task));
  return CLI::IsMember(keys, CLI::ignore_case);
}

void add_rows_options(CLI::App& command, RowsArguments& arguments, const std::string& tasks_help,
                      const std::string& frame_list_help) {
  command.add_option("--tasks", arguments.tasks, tasks_help)->delimiter(',')->check(task_name_check());
  command.add_option("--frame-list", arguments.frame_lists, frame_list_help);
  command.add_option("--annotations", arguments.annotations,
                     "[TASK=]DIR: annotation folder (*_Challenge/*_Set); frame count = line count; task from the "
                     "headers when not given (repeatable)");
}

void store_rows_options(const RowsArguments& arguments, RowsOptions& options) {
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

std::function<void()> add_compute_options(CLI::App& command, ComputeOptions& options) {
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
      ->check(CLI::IsMember(all_names(kPrecisionNames)));
  add_enum_option(command, "--preprocess-on", options.preprocess_on, kPreprocessPlaceNames,
                  "Where pixels become normalised float tensors: host (decode threads), device (the encoder's "
                  "device, from 8-bit pixels: a quarter of the bytes to copy to a GPU) or auto (device on CUDA, "
                  "else host). Decoding and resizing are always on the host");
  command
      .add_option("--manifest-patch", options.manifest_patch,
                  "JSON merged into the manifest first (RFC 7396): the fragment `tune` writes, or e.g. "
                  "{\"encoder\": {\"memory_format\": \"channels_last\"}}")
      ->check(CLI::ExistingFile);
  return [precision, &options] {
    if (!precision->empty()) options.precision = parse_name(kPrecisionNames, *precision);
  };
}

}  // namespace abaw::cli
