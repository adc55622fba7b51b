// The subcommands of abaw-infer. Each registers its options on a CLI11 subcommand (declared once,
// with help and validation) and returns the action that runs it; main() only dispatches.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "abaw/annotations.hpp"
#include "abaw/bench.hpp"
#include "abaw/enum_names.hpp"
#include "abaw/pipeline.hpp"
#include "abaw/tasks.hpp"

namespace abaw::cli {

// Runs a parsed subcommand and returns the process exit code.
using Action = std::function<int()>;

// The action of each registered subcommand.
using Commands = std::map<CLI::App*, Action>;

// Registers a group of subcommands on `app` and their actions in `actions`.
using AddCommands = std::function<void(CLI::App& app, Commands& actions)>;

// The whole command line: registers the subcommands that add_model_commands adds (none when
// null), then eval, check, tune, merge, compare and report; parses; runs the chosen one; returns the exit code.
// Errors become one line on stderr and their documented exit code.
int cli_main(int argc, char** argv, const AddCommands& add_model_commands);

// The subcommands cli_main always registers: they need neither LibTorch nor OpenCV.
const std::vector<std::string>& text_command_names();

// Registers run, info, crop, render and bench (the commands that load models or decode video).
void add_model_commands(CLI::App& app, Commands& actions);

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

// `compare`: how far two runs' predictions are apart.
Action add_compare_command(CLI::App& app);

// `report`: a self-contained HTML report of a run.
Action add_report_command(CLI::App& app);

// `render`: a video with a run's predictions drawn on it.
Action add_render_command(CLI::App& app);

// `crop`: videos -> Aff-Wild2 crop folders.
Action add_crop_command(CLI::App& app);

// `merge`: shards and ensembles -> submissions.
Action add_merge_command(CLI::App& app);

// `bench`: one pipeline stage timed alone (exposed like `run` for parser tests).
Action add_bench_command(CLI::App& app, BenchOptions& options);

// Declares an option that stores an enum value given by one of the names in its table (the one
// place those names are spelled); help lists them and shows `value`'s name as the default.
template <class Enum, size_t N>
CLI::Option* add_enum_option(CLI::App& command, const std::string& name, Enum& value, const EnumName<Enum> (&table)[N],
                             const std::string& help) {
  std::map<std::string, Enum> by_name;
  std::string names;
  for (const auto& entry : table) {
    by_name.emplace(entry.name, entry.value);
    names += (names.empty() ? "" : ",") + std::string(entry.name);
  }
  return command.add_option(name, value, help)
      ->transform(CLI::CheckedTransformer(by_name).description("{" + names + "}"))
      ->default_str(name_of(table, value));
}

// The check for a task name: va, expr or au in any case, as parse_task accepts them.
CLI::Validator task_name_check();

// Declares, once, the options `run` and `bench` share (ComputeOptions): --device, --batch-size,
// --pack-batches, --threads, --decode-threads, --max-image-pixels, --precision, --preprocess-on
// and --manifest-patch. The returned function stores the parsed precision in `options`; the
// command's callback calls it.
std::function<void()> add_compute_options(CLI::App& command, ComputeOptions& options);

// Declares, once, the face-finding options `crop` and `run --videos` share (FaceFinderOptions):
// --detector, --style, --face-models, --detect-size, --detect-every, --yunet-model, --cascade,
// --score-threshold, --min-face, --size, --margin and --jpeg-quality. The returned function,
// called from the command's callback, stores the ones given in `options.pipeline` (the rest stay
// unset, for a model set's "faces") and resolves --face-models (default_face_models()).
std::function<void()> add_face_options(CLI::App& command, FaceFinderOptions& options);

// models/default/faces under the current folder, else in the repository the running binary was
// built in (build/abaw-infer -> build/../models/default/faces); the former when neither has one,
// so that the error names where to make them.
std::filesystem::path default_face_models();

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

// Stores parsed rows options into `options`. A second frame list or annotation folder for one
// task is a usage error (CLI::ValidationError), never silently the last.
void store_rows_options(const RowsArguments& arguments, RowsOptions& options);

}  // namespace abaw::cli
